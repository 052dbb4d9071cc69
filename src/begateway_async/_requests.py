"""Request models: one frozen class per gateway operation, validated on construction.

Every class maps to one documented path; `Gateway.submit` sends it to the
same path under ``/async``. Amounts are integers in minor currency units
(USD 32.45 is ``3245``). Fields the models do not name go in ``extra`` and
are sent as they are; they may not shadow a named field.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Literal, TypeVar
from urllib.parse import quote

import attrs

from ._errors import InvalidRequest
from ._models import Balance, Transaction

__all__ = [
    "AdditionalData",
    "Authorization",
    "BalanceQuery",
    "BillingAddress",
    "Capture",
    "Chargeback",
    "Checkup",
    "CreditCard",
    "Customer",
    "EncryptedCreditCard",
    "Payment",
    "Payout",
    "Refund",
    "Request",
    "StatusQuery",
    "Tokenization",
    "TrackingIdQuery",
    "Void",
]

ResultT_co = TypeVar("ResultT_co", covariant=True)
ResultKind = Literal["transaction", "transactions", "balance"]

_CURRENCY = re.compile(r"[A-Z]{3}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_LANGUAGE = re.compile(r"[a-z]{2}")
_DIGITS = re.compile(r"[0-9]+")
_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: Keys that are ours, not the gateway's: never sent.
_LOCAL = {"local": True}


def _fail(instance: object, attribute: attrs.Attribute[Any], reason: str) -> None:
    raise InvalidRequest(f"{type(instance).__name__}.{attribute.name}", reason)


def _amount(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(instance, attribute, f"must be an integer in minor units, not {value!r}")
    elif value <= 0:
        _fail(instance, attribute, f"must be greater than 0, not {value}")


def _pattern(regex: re.Pattern[str], what: str) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            return
        if not isinstance(value, str) or not regex.fullmatch(value):
            _fail(instance, attribute, f"must be {what}, not {value!r}")

    return check


def _text(max_length: int, *, required: bool = False) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            if required:
                _fail(instance, attribute, "is required")
            return
        if not isinstance(value, str):
            _fail(instance, attribute, f"must be a string, not {type(value).__name__}")
        elif required and not value.strip():
            _fail(instance, attribute, "must not be blank")
        elif len(value) > max_length:
            _fail(instance, attribute, f"must be at most {max_length} characters")

    return check


def _url(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not re.match(r"https?://[^/\s]+", value):
        _fail(instance, attribute, f"must be an absolute http(s) URL, not {value!r}")


def _flag(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, bool):
        _fail(instance, attribute, f"must be True, False or None, not {value!r}")


def _mapping(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, Mapping):
        _fail(instance, attribute, f"must be a mapping, not {type(value).__name__}")


def _instance(cls: type | tuple[type, ...]) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and not isinstance(value, cls):
            names = " or ".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))
            _fail(instance, attribute, f"must be a {names}, not {type(value).__name__}")

    return check


def _strings(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
        _fail(instance, attribute, "must be a list of strings")


def _tuple_or_none(value: Any) -> Any:
    # A list becomes a tuple (frozen); anything else is left for the
    # validator to refuse by name (a bare string is not a list of strings).
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


def _check_extra(instance: Any) -> None:
    extra = getattr(instance, "extra", None)
    if not extra:
        return
    named = {a.name for a in attrs.fields(type(instance))}
    for key in extra:
        if not isinstance(key, str):
            raise InvalidRequest(f"{type(instance).__name__}.extra", "keys must be strings")
        if key in named:
            raise InvalidRequest(
                f"{type(instance).__name__}.extra", f"{key!r} is a named field; set it directly"
            )


# --- nested parts -------------------------------------------------------------------------


@attrs.frozen(kw_only=True, repr=False)
class CreditCard:
    """Card data: a full card, or a ``token`` from an earlier transaction.

    The card number is shown masked in ``repr`` (last four digits), the
    verification value and the token never.

    Attributes:
        number: the PAN, digits only.
        verification_value: CVV/CVC.
        holder: the name on the card.
        exp_month: 1-12, sent as ``"MM"``.
        exp_year: four digits, sent as ``"YYYY"``.
        token: a card token, instead of number and expiry.
    """

    number: str | None = attrs.field(default=None, validator=_pattern(_DIGITS, "digits only"))
    verification_value: str | None = attrs.field(
        default=None, validator=_pattern(re.compile(r"[0-9]{3,4}"), "3 or 4 digits")
    )
    holder: str | None = attrs.field(default=None, validator=_text(255))
    exp_month: int | None = attrs.field(default=None)
    exp_year: int | None = attrs.field(default=None)
    token: str | None = attrs.field(default=None, validator=_text(255))
    skip_three_d_secure_verification: bool | None = attrs.field(default=None, validator=_flag)
    force_three_d_secure_verification: bool | None = attrs.field(default=None, validator=_flag)

    @exp_month.validator
    def _check_month(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 12  # noqa: PLR2004
        ):
            _fail(self, attribute, f"must be an integer from 1 to 12, not {value!r}")

    @exp_year.validator
    def _check_year(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1000 <= value <= 9999  # noqa: PLR2004
        ):
            _fail(self, attribute, f"must be a four-digit year, not {value!r}")

    def __attrs_post_init__(self) -> None:
        if self.number is not None and not 12 <= len(self.number) <= 19:  # noqa: PLR2004
            raise InvalidRequest("CreditCard.number", "must have 12 to 19 digits")
        if self.token is None:
            for name in ("number", "exp_month", "exp_year"):
                if getattr(self, name) is None:
                    raise InvalidRequest(f"CreditCard.{name}", "is required unless token is given")

    def __repr__(self) -> str:
        shown = [f"number='****{self.number[-4:]}'" if self.number else None]
        shown += [f"exp={self.exp_month:02d}/{self.exp_year}" if self.exp_month else None]
        shown += ["token=<hidden>" if self.token else None]
        shown += ["holder=<set>" if self.holder else None]
        return f"CreditCard({', '.join(s for s in shown if s)})"


@attrs.frozen(kw_only=True, repr=False)
class EncryptedCreditCard:
    """Card data encrypted in the browser by the gateway's client-side library.

    Each value is the library's ``$begatewaycsejs_1_0_0$...`` string.
    """

    number: str = attrs.field(validator=_text(4096, required=True))
    verification_value: str | None = attrs.field(default=None, validator=_text(4096))
    holder: str | None = attrs.field(default=None, validator=_text(4096))
    exp_month: str = attrs.field(validator=_text(4096, required=True))
    exp_year: str = attrs.field(validator=_text(4096, required=True))

    def __repr__(self) -> str:
        return "EncryptedCreditCard(<hidden>)"


@attrs.frozen(kw_only=True)
class Customer:
    """The payer: ``ip`` and ``email`` are the fields most shops require."""

    ip: str | None = attrs.field(default=None, validator=_text(64))
    email: str | None = attrs.field(default=None, validator=_text(255))
    device_id: str | None = attrs.field(default=None, validator=_text(255))
    birth_date: dt.date | None = attrs.field(default=None, validator=_instance(dt.date))
    first_name: str | None = attrs.field(default=None, validator=_text(255))
    last_name: str | None = attrs.field(default=None, validator=_text(255))

    def __attrs_post_init__(self) -> None:
        if self.email is not None and "@" not in self.email:
            raise InvalidRequest("Customer.email", f"is not an e-mail address: {self.email!r}")


@attrs.frozen(kw_only=True)
class BillingAddress:
    """The card holder's address; ``country`` is ISO 3166-1 alpha-2."""

    first_name: str | None = attrs.field(default=None, validator=_text(255))
    last_name: str | None = attrs.field(default=None, validator=_text(255))
    country: str | None = attrs.field(
        default=None, validator=_pattern(_COUNTRY, "a two-letter upper-case country code")
    )
    city: str | None = attrs.field(default=None, validator=_text(255))
    state: str | None = attrs.field(default=None, validator=_text(255))
    zip: str | None = attrs.field(default=None, validator=_text(32))
    address: str | None = attrs.field(default=None, validator=_text(255))
    phone: str | None = attrs.field(default=None, validator=_text(100))


@attrs.frozen(kw_only=True)
class AdditionalData:
    """Extra transaction data: receipt lines, recurring contract, 3-DS 2.0 browser data."""

    receipt_text: tuple[str, ...] | None = attrs.field(
        default=None, converter=_tuple_or_none, validator=_strings
    )
    contract: tuple[str, ...] | None = attrs.field(
        default=None, converter=_tuple_or_none, validator=_strings
    )
    browser: Mapping[str, Any] | None = attrs.field(default=None, validator=_mapping)
    meta: Mapping[str, Any] | None = attrs.field(default=None, validator=_mapping)
    extra: Mapping[str, Any] | None = attrs.field(default=None, validator=_mapping)

    def __attrs_post_init__(self) -> None:
        _check_extra(self)


# --- operations ---------------------------------------------------------------------------


class Request(Generic[ResultT_co]):
    """Base of every operation; ``ResultT_co`` is what awaiting its job returns."""

    #: The operation's synchronous path; the async one is ``/async`` + this.
    _path: ClassVar[str]
    _method: ClassVar[str] = "POST"
    _result_kind: ClassVar[ResultKind] = "transaction"
    _headers: ClassVar[Mapping[str, str]] = {}
    operation: ClassVar[str]

    def path(self) -> str:
        """Return the operation's synchronous path (the async one adds ``/async`` in front)."""
        return self._path

    @property
    def key(self) -> str | None:
        """The merchant's reconciliation key for this request: its tracking_id, if any."""
        return getattr(self, "tracking_id", None)


_card_validator = _instance((CreditCard,))


@attrs.frozen(kw_only=True)
class _CardRequest(Request[Transaction]):
    """Fields shared by payment, authorization, tokenization and checkup."""

    amount: int = attrs.field(validator=_amount)
    currency: str = attrs.field(
        validator=_pattern(_CURRENCY, "an ISO 4217 code of three upper-case letters")
    )
    description: str = attrs.field(validator=_text(255, required=True))
    tracking_id: str | None = attrs.field(default=None, validator=_text(255))
    credit_card: CreditCard | None = attrs.field(default=None, validator=_card_validator)
    encrypted_credit_card: EncryptedCreditCard | None = attrs.field(
        default=None, validator=_instance(EncryptedCreditCard)
    )
    customer: Customer | None = attrs.field(default=None, validator=_instance(Customer))
    billing_address: BillingAddress | None = attrs.field(
        default=None, validator=_instance(BillingAddress)
    )
    additional_data: AdditionalData | None = attrs.field(
        default=None, validator=_instance(AdditionalData)
    )
    language: str | None = attrs.field(
        default=None, validator=_pattern(_LANGUAGE, "a two-letter language code")
    )
    notification_url: str | None = attrs.field(default=None, validator=_url)
    verification_url: str | None = attrs.field(default=None, validator=_url)
    return_url: str | None = attrs.field(default=None, validator=_url)
    expired_at: dt.datetime | None = attrs.field(default=None, validator=_instance(dt.datetime))
    duplicate_check: bool | None = attrs.field(default=None, validator=_flag)
    test: bool | None = attrs.field(default=None, validator=_flag)
    dynamic_billing_descriptor: str | None = attrs.field(default=None, validator=_text(255))
    extra: Mapping[str, Any] | None = attrs.field(default=None, validator=_mapping)

    def __attrs_post_init__(self) -> None:
        _check_extra(self)
        name = type(self).__name__
        if self.credit_card is None and self.encrypted_credit_card is None:
            raise InvalidRequest(f"{name}.credit_card", "a card (or encrypted card) is required")
        if self.credit_card is not None and self.encrypted_credit_card is not None:
            raise InvalidRequest(
                f"{name}.credit_card", "give a card or an encrypted card, not both"
            )
        if self.expired_at is not None and self.expired_at.tzinfo is None:
            raise InvalidRequest(f"{name}.expired_at", "must be timezone-aware")


@attrs.frozen(kw_only=True)
class Payment(_CardRequest):
    """Charge a card at once (authorization and capture in one step)."""

    _path = "/transactions/payments"
    operation = "payment"


@attrs.frozen(kw_only=True)
class Authorization(_CardRequest):
    """Hold funds on a card; follow with `Capture` or `Void`."""

    _path = "/transactions/authorizations"
    operation = "authorization"


@attrs.frozen(kw_only=True)
class Tokenization(_CardRequest):
    """Verify a card and get a token for later payments; no money is taken."""

    _path = "/transactions/tokenizations"
    operation = "tokenization"


@attrs.frozen(kw_only=True)
class Checkup(_CardRequest):
    """Run the shop's risk rules on a would-be payment; nothing is charged.

    ``tracking_id`` is required for a checkup.
    """

    _path = "/transactions/checkups"
    operation = "checkup"

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if not self.tracking_id:
            raise InvalidRequest("Checkup.tracking_id", "is required for a checkup")


@attrs.frozen(kw_only=True)
class Payout(Request[Transaction]):
    """Send money to a card (``/transactions/payouts``).

    Set ``legacy=True`` for shops on the older ``/transactions/credits``
    endpoint, which takes the recipient in ``credit_card`` (usually a token
    from an earlier payment).
    """

    amount: int = attrs.field(validator=_amount)
    currency: str = attrs.field(
        validator=_pattern(_CURRENCY, "an ISO 4217 code of three upper-case letters")
    )
    description: str = attrs.field(validator=_text(255, required=True))
    tracking_id: str | None = attrs.field(default=None, validator=_text(255))
    credit_card: CreditCard | None = attrs.field(default=None, validator=_card_validator)
    recipient_credit_card: CreditCard | None = attrs.field(default=None, validator=_card_validator)
    recipient: Customer | None = attrs.field(default=None, validator=_instance(Customer))
    recipient_billing_address: BillingAddress | None = attrs.field(
        default=None, validator=_instance(BillingAddress)
    )
    language: str | None = attrs.field(
        default=None, validator=_pattern(_LANGUAGE, "a two-letter language code")
    )
    notification_url: str | None = attrs.field(default=None, validator=_url)
    duplicate_check: bool | None = attrs.field(default=None, validator=_flag)
    test: bool | None = attrs.field(default=None, validator=_flag)
    additional_data: AdditionalData | None = attrs.field(
        default=None, validator=_instance(AdditionalData)
    )
    extra: Mapping[str, Any] | None = attrs.field(default=None, validator=_mapping)
    legacy: bool = attrs.field(default=False, validator=_flag, metadata=_LOCAL)

    operation = "payout"

    def __attrs_post_init__(self) -> None:
        _check_extra(self)
        if self.credit_card is None and self.recipient_credit_card is None:
            raise InvalidRequest(
                "Payout.recipient_credit_card", "a recipient card (or credit_card) is required"
            )

    def path(self) -> str:
        """Return ``/transactions/credits`` for legacy shops, else ``/transactions/payouts``."""
        return "/transactions/credits" if self.legacy else "/transactions/payouts"


@attrs.frozen(kw_only=True)
class _ChildRequest(Request[Transaction]):
    """Fields shared by operations on an earlier transaction."""

    parent_uid: str = attrs.field(validator=_pattern(_UID, "a transaction uid"))
    amount: int = attrs.field(validator=_amount)
    duplicate_check: bool | None = attrs.field(default=None, validator=_flag)
    test: bool | None = attrs.field(default=None, validator=_flag)
    extra: Mapping[str, Any] | None = attrs.field(default=None, validator=_mapping)

    def __attrs_post_init__(self) -> None:
        _check_extra(self)


@attrs.frozen(kw_only=True)
class Capture(_ChildRequest):
    """Take (part of) the funds held by an authorization."""

    _path = "/transactions/captures"
    operation = "capture"


@attrs.frozen(kw_only=True)
class Void(_ChildRequest):
    """Release (part of) the funds held by an authorization."""

    _path = "/transactions/voids"
    operation = "void"


@attrs.frozen(kw_only=True)
class Refund(_ChildRequest):
    """Return (part of) a payment or capture to the card; ``reason`` is required."""

    reason: str = attrs.field(validator=_text(255, required=True))

    _path = "/transactions/refunds"
    operation = "refund"


@attrs.frozen(kw_only=True)
class Chargeback(_ChildRequest):
    """Register a chargeback on a transaction (where the shop may do so)."""

    reason: str | None = attrs.field(default=None, validator=_text(255))

    _path = "/transactions/chargebacks"
    operation = "chargeback"


@attrs.frozen(kw_only=True)
class StatusQuery(Request[Transaction]):
    """The current state of one transaction, by its ``uid``."""

    uid: str = attrs.field(validator=_pattern(_UID, "a transaction uid"))

    _method = "GET"
    operation = "status_query"

    def path(self) -> str:
        """Return ``/transactions/{uid}``."""
        return f"/transactions/{self.uid}"


@attrs.frozen(kw_only=True)
class TrackingIdQuery(Request[list[Transaction]]):
    """The (at most ten, newest first) transactions carrying a ``tracking_id``."""

    tracking_id: str = attrs.field(validator=_text(255, required=True))

    _method = "GET"
    _result_kind = "transactions"
    operation = "tracking_id_query"

    def path(self) -> str:
        """Return ``/v2/transactions/tracking_id/{tracking_id}``, the id percent-encoded."""
        return f"/v2/transactions/tracking_id/{quote(self.tracking_id, safe='')}"


@attrs.frozen(kw_only=True)
class BalanceQuery(Request[Balance]):
    """The acquirer account's balance; give exactly one of account, currency, gateway_id."""

    account: str | None = attrs.field(default=None, validator=_text(64))
    currency: str | None = attrs.field(
        default=None, validator=_pattern(_CURRENCY, "an ISO 4217 code of three upper-case letters")
    )
    gateway_id: str | None = attrs.field(default=None, validator=_text(64))

    _path = "/balance"
    _result_kind = "balance"
    _headers: ClassVar[Mapping[str, str]] = MappingProxyType({"X-API-Version": "2"})  # required
    operation = "balance_query"

    def __attrs_post_init__(self) -> None:
        given = [n for n in ("account", "currency", "gateway_id") if getattr(self, n) is not None]
        if len(given) != 1:
            raise InvalidRequest(
                "BalanceQuery", "give exactly one of account, currency or gateway_id"
            )


def result_kind(operation: str) -> ResultKind:
    """Return how the result of an operation (by its name) is read."""
    return {"tracking_id_query": "transactions", "balance_query": "balance"}.get(
        operation, "transaction"
    )  # type: ignore[return-value]
