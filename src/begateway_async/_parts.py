"""The parts of a request: the card (plain or encrypted), the customer, the address, extra data.

Card data never shows in a ``repr``: the number is masked to its last four
digits, the verification value and the token are hidden.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

import attrs

from . import _validators as v
from ._errors import InvalidRequest

__all__ = ["AdditionalData", "BillingAddress", "CreditCard", "Customer", "EncryptedCreditCard"]


def _digits_as_int(value: int | str | None) -> int | None:
    """An expiry as the gateway's docs and CSV exports write it (``"05"``, ``"2030"``)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 4:  # noqa: PLR2004
        return int(value)
    return value  # type: ignore[return-value]  # anything else: the validator refuses it


@attrs.frozen(kw_only=True, repr=False)
class CreditCard:
    """Card data: a full card, or a ``token`` from an earlier transaction.

    The card number is shown masked in ``repr`` (last four digits), the
    expiry, the verification value and the token never.

    Attributes:
        number: the PAN, digits only.
        verification_value: CVV/CVC.
        holder: the name on the card.
        exp_month: 1-12, sent as ``"MM"``; the text ``"05"`` is taken as 5.
        exp_year: four digits, sent as ``"YYYY"``; the text ``"2030"`` is taken too.
        token: a card token, instead of number and expiry.
    """

    number: str | None = attrs.field(
        default=None, validator=v.pattern(v.DIGITS, "digits only", secret=True)
    )
    verification_value: str | None = attrs.field(
        default=None,
        validator=v.pattern(re.compile(r"[0-9]{3,4}"), "3 or 4 digits", secret=True),
    )
    holder: str | None = attrs.field(default=None, validator=v.text(255))
    exp_month: int | None = attrs.field(default=None, converter=_digits_as_int)
    exp_year: int | None = attrs.field(default=None, converter=_digits_as_int)
    token: str | None = attrs.field(default=None, validator=v.text(255))
    skip_three_d_secure_verification: bool | None = attrs.field(default=None, validator=v.flag)
    force_three_d_secure_verification: bool | None = attrs.field(default=None, validator=v.flag)

    @exp_month.validator
    def _check_month(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 12  # noqa: PLR2004
        ):
            v.fail(
                self,
                attribute,
                f"must be an integer from 1 to 12, not {v.shown(value, secret=True)}",
            )

    @exp_year.validator
    def _check_year(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1000 <= value <= 9999  # noqa: PLR2004
        ):
            v.fail(self, attribute, f"must be a four-digit year, not {v.shown(value, secret=True)}")

    def __attrs_post_init__(self) -> None:
        if self.number is not None and not 12 <= len(self.number) <= 19:  # noqa: PLR2004
            raise InvalidRequest("CreditCard.number", "must have 12 to 19 digits")
        if self.token is None:
            for name in ("number", "exp_month", "exp_year"):
                if getattr(self, name) is None:
                    raise InvalidRequest(f"CreditCard.{name}", "is required unless token is given")

    def __repr__(self) -> str:
        shown = [f"number='****{self.number[-4:]}'" if self.number else None]
        shown += ["exp=<set>" if self.exp_month else None]  # the expiry is card data too
        shown += ["token=<hidden>" if self.token else None]
        shown += ["holder=<set>" if self.holder else None]
        return f"CreditCard({', '.join(s for s in shown if s)})"


@attrs.frozen(kw_only=True, repr=False)
class EncryptedCreditCard:
    """Card data encrypted in the browser by the gateway's client-side library.

    Each value is the library's ``$begatewaycsejs_1_0_0$...`` string.
    """

    number: str = attrs.field(validator=v.text(4096, required=True))
    verification_value: str | None = attrs.field(default=None, validator=v.text(4096))
    holder: str | None = attrs.field(default=None, validator=v.text(4096))
    exp_month: str = attrs.field(validator=v.text(4096, required=True))
    exp_year: str = attrs.field(validator=v.text(4096, required=True))

    def __repr__(self) -> str:
        return "EncryptedCreditCard(<hidden>)"


@attrs.frozen(kw_only=True)
class Customer:
    """The payer: ``ip`` and ``email`` are the fields most shops require."""

    ip: str | None = attrs.field(default=None, validator=v.text(64))
    email: str | None = attrs.field(default=None, validator=v.text(255))
    device_id: str | None = attrs.field(default=None, validator=v.text(255))
    birth_date: dt.date | None = attrs.field(default=None, validator=v.instance_of(dt.date))
    first_name: str | None = attrs.field(default=None, validator=v.text(255))
    last_name: str | None = attrs.field(default=None, validator=v.text(255))

    def __attrs_post_init__(self) -> None:
        if self.email is not None and "@" not in self.email:
            raise InvalidRequest("Customer.email", f"is not an e-mail address: {self.email!r}")


@attrs.frozen(kw_only=True)
class BillingAddress:
    """The card holder's address; ``country`` is ISO 3166-1 alpha-2."""

    first_name: str | None = attrs.field(default=None, validator=v.text(255))
    last_name: str | None = attrs.field(default=None, validator=v.text(255))
    country: str | None = attrs.field(
        default=None, validator=v.pattern(v.COUNTRY, "a two-letter upper-case country code")
    )
    city: str | None = attrs.field(default=None, validator=v.text(255))
    state: str | None = attrs.field(default=None, validator=v.text(255))
    zip: str | None = attrs.field(default=None, validator=v.text(32))
    address: str | None = attrs.field(default=None, validator=v.text(255))
    phone: str | None = attrs.field(default=None, validator=v.text(100))


@attrs.frozen(kw_only=True)
class AdditionalData:
    """Extra transaction data: receipt lines, recurring contract, 3-DS 2.0 browser data."""

    receipt_text: tuple[str, ...] | None = attrs.field(
        default=None, converter=v.tuple_or_none, validator=v.strings
    )
    contract: tuple[str, ...] | None = attrs.field(
        default=None, converter=v.tuple_or_none, validator=v.strings
    )
    browser: Mapping[str, Any] | None = attrs.field(default=None, validator=v.mapping)
    meta: Mapping[str, Any] | None = attrs.field(default=None, validator=v.mapping)
    extra: Mapping[str, Any] | None = attrs.field(default=None, validator=v.mapping)

    def __attrs_post_init__(self) -> None:
        v.check_extra(self)
