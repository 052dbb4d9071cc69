"""Request models: one frozen class per gateway operation, validated on construction.

Every class maps to one documented path; `Gateway.submit` sends it to the
same path under ``/async``. Amounts are integers in minor currency units
(USD 32.45 is ``3245``). Fields the models do not name go in ``extra`` and
are sent as they are; they may not shadow a named field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Literal, TypeVar
from urllib.parse import quote

import attrs

from . import _validators as v
from ._errors import InvalidRequest
from ._models import Balance, Transaction
from ._parts import AdditionalData, BillingAddress, CreditCard, Customer, EncryptedCreditCard

__all__ = [
    "Authorization",
    "BalanceQuery",
    "Capture",
    "Chargeback",
    "Checkup",
    "Payment",
    "Payout",
    "Refund",
    "Request",
    "StatusQuery",
    "Tokenization",
    "TrackingIdQuery",
    "Void",
    "result_kind",
]

ResultT_co = TypeVar("ResultT_co", covariant=True)
ResultKind = Literal["transaction", "transactions", "balance"]


class Request(Generic[ResultT_co]):
    """Base of every operation; ``ResultT_co`` is what awaiting its job returns."""

    #: The operation's synchronous path; the async one is ``/async`` + this.
    _path: ClassVar[str]
    _result_kind: ClassVar[ResultKind] = "transaction"
    #: The HTTP method of the operation.
    http_method: ClassVar[str] = "POST"
    #: Headers the operation needs whatever the Gateway sends (`BalanceQuery`: API version 2).
    http_headers: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: The operation's name (``"payment"``, ``"refund"``, ...).
    operation: ClassVar[str]

    def path(self) -> str:
        """Return the operation's synchronous path (the async one adds ``/async`` in front)."""
        return self._path

    @property
    def key(self) -> str | None:
        """The merchant's reconciliation key for this request: its tracking_id, if any."""
        return getattr(self, "tracking_id", None)


_card_validator = v.instance_of((CreditCard,))


@attrs.frozen(kw_only=True)
class _CardRequest(Request[Transaction]):
    """Fields shared by payment, authorization, tokenization and checkup."""

    amount: int = attrs.field(validator=v.amount)
    currency: str = attrs.field(
        validator=v.pattern(v.CURRENCY, "an ISO 4217 code of three upper-case letters")
    )
    description: str = attrs.field(validator=v.text(255, required=True))
    tracking_id: str | None = attrs.field(default=None, validator=v.text(255))
    credit_card: CreditCard | None = attrs.field(default=None, validator=_card_validator)
    encrypted_credit_card: EncryptedCreditCard | None = attrs.field(
        default=None, validator=v.instance_of(EncryptedCreditCard)
    )
    customer: Customer | None = attrs.field(default=None, validator=v.instance_of(Customer))
    billing_address: BillingAddress | None = attrs.field(
        default=None, validator=v.instance_of(BillingAddress)
    )
    additional_data: AdditionalData | None = attrs.field(
        default=None, validator=v.instance_of(AdditionalData)
    )
    language: str | None = attrs.field(
        default=None, validator=v.pattern(v.LANGUAGE, "a two-letter language code")
    )
    notification_url: str | None = attrs.field(default=None, validator=v.url)
    verification_url: str | None = attrs.field(default=None, validator=v.url)
    return_url: str | None = attrs.field(default=None, validator=v.url)
    expired_at: dt.datetime | None = attrs.field(default=None, validator=v.instance_of(dt.datetime))
    duplicate_check: bool | None = attrs.field(default=None, validator=v.flag)
    test: bool | None = attrs.field(default=None, validator=v.flag)
    dynamic_billing_descriptor: str | None = attrs.field(default=None, validator=v.text(255))
    extra: Mapping[str, Any] | None = attrs.field(default=None, validator=v.mapping)

    def __attrs_post_init__(self) -> None:
        v.check_extra(self)
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

    amount: int = attrs.field(validator=v.amount)
    currency: str = attrs.field(
        validator=v.pattern(v.CURRENCY, "an ISO 4217 code of three upper-case letters")
    )
    description: str = attrs.field(validator=v.text(255, required=True))
    tracking_id: str | None = attrs.field(default=None, validator=v.text(255))
    credit_card: CreditCard | None = attrs.field(default=None, validator=_card_validator)
    recipient_credit_card: CreditCard | None = attrs.field(default=None, validator=_card_validator)
    recipient: Customer | None = attrs.field(default=None, validator=v.instance_of(Customer))
    recipient_billing_address: BillingAddress | None = attrs.field(
        default=None, validator=v.instance_of(BillingAddress)
    )
    language: str | None = attrs.field(
        default=None, validator=v.pattern(v.LANGUAGE, "a two-letter language code")
    )
    notification_url: str | None = attrs.field(default=None, validator=v.url)
    duplicate_check: bool | None = attrs.field(default=None, validator=v.flag)
    test: bool | None = attrs.field(default=None, validator=v.flag)
    additional_data: AdditionalData | None = attrs.field(
        default=None, validator=v.instance_of(AdditionalData)
    )
    extra: Mapping[str, Any] | None = attrs.field(default=None, validator=v.mapping)
    legacy: bool = attrs.field(default=False, validator=v.flag, metadata=v.LOCAL)

    operation = "payout"

    def __attrs_post_init__(self) -> None:
        v.check_extra(self)
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

    parent_uid: str = attrs.field(validator=v.pattern(v.UID, "a transaction uid"))
    amount: int = attrs.field(validator=v.amount)
    duplicate_check: bool | None = attrs.field(default=None, validator=v.flag)
    test: bool | None = attrs.field(default=None, validator=v.flag)
    extra: Mapping[str, Any] | None = attrs.field(default=None, validator=v.mapping)

    def __attrs_post_init__(self) -> None:
        v.check_extra(self)


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

    reason: str = attrs.field(validator=v.text(255, required=True))

    _path = "/transactions/refunds"
    operation = "refund"


@attrs.frozen(kw_only=True)
class Chargeback(_ChildRequest):
    """Register a chargeback on a transaction (where the shop may do so)."""

    reason: str | None = attrs.field(default=None, validator=v.text(255))

    _path = "/transactions/chargebacks"
    operation = "chargeback"


@attrs.frozen(kw_only=True)
class StatusQuery(Request[Transaction]):
    """The current state of one transaction, by its ``uid``."""

    uid: str = attrs.field(validator=v.pattern(v.UID, "a transaction uid"))

    http_method = "GET"
    operation = "status_query"

    def path(self) -> str:
        """Return ``/transactions/{uid}``."""
        return f"/transactions/{self.uid}"


@attrs.frozen(kw_only=True)
class TrackingIdQuery(Request[list[Transaction]]):
    """The (at most ten, newest first) transactions carrying a ``tracking_id``."""

    tracking_id: str = attrs.field(validator=v.text(255, required=True))

    http_method = "GET"
    _result_kind = "transactions"
    operation = "tracking_id_query"

    def path(self) -> str:
        """Return ``/v2/transactions/tracking_id/{tracking_id}``, the id percent-encoded."""
        return f"/v2/transactions/tracking_id/{quote(self.tracking_id, safe='')}"


@attrs.frozen(kw_only=True)
class BalanceQuery(Request[Balance]):
    """The acquirer account's balance; give exactly one of account, currency, gateway_id."""

    account: str | None = attrs.field(default=None, validator=v.text(64))
    currency: str | None = attrs.field(
        default=None,
        validator=v.pattern(v.CURRENCY, "an ISO 4217 code of three upper-case letters"),
    )
    gateway_id: str | None = attrs.field(default=None, validator=v.text(64))

    _path = "/balance"
    _result_kind = "balance"
    http_headers: ClassVar[Mapping[str, str]] = MappingProxyType({"X-API-Version": "2"})
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
