"""Result models: what awaiting a job returns.

All are frozen attrs classes built by the one converter in `_serde`. Each
keeps the whole decoded answer in ``raw``, so a field the models do not
name is never lost; unknown fields are never an error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

__all__ = [
    "AvsCvc",
    "Balance",
    "BankDetails",
    "BeProtected",
    "Card",
    "ThreeDSecure",
    "Transaction",
    "TransactionStatus",
]


class TransactionStatus(str):
    """A transaction status: a string that also names the well-known values.

    It compares equal to plain strings (``tx.status == "successful"``) and
    accepts values this version has not seen, so a new status of the gateway
    is never an error.
    """

    __slots__ = ()

    SUCCESSFUL: ClassVar[TransactionStatus]
    FAILED: ClassVar[TransactionStatus]
    INCOMPLETE: ClassVar[TransactionStatus]
    PENDING: ClassVar[TransactionStatus]
    EXPIRED: ClassVar[TransactionStatus]
    ERROR: ClassVar[TransactionStatus]

    @property
    def known(self) -> bool:
        """Whether this is one of the statuses documented by the gateway."""
        return self in _KNOWN_STATUSES

    @property
    def final(self) -> bool:
        """Whether the transaction can no longer change (not incomplete nor pending)."""
        return self not in {"incomplete", "pending"}

    def __repr__(self) -> str:
        return f"TransactionStatus({str.__repr__(self)})"


TransactionStatus.SUCCESSFUL = TransactionStatus("successful")
TransactionStatus.FAILED = TransactionStatus("failed")
TransactionStatus.INCOMPLETE = TransactionStatus("incomplete")
TransactionStatus.PENDING = TransactionStatus("pending")
TransactionStatus.EXPIRED = TransactionStatus("expired")
TransactionStatus.ERROR = TransactionStatus("error")
_KNOWN_STATUSES = frozenset({"successful", "failed", "incomplete", "pending", "expired", "error"})


@attrs.frozen(kw_only=True)
class Card:
    """The card of a transaction as the gateway reports it (never the full number)."""

    holder: str | None = None
    stamp: str | None = None
    brand: str | None = None
    last_4: str | None = None
    first_1: str | None = None
    bin: str | None = None
    issuer_country: str | None = None
    issuer_name: str | None = None
    product: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    token_provider: str | None = None
    #: A token charges the card again: it is hidden from ``repr``.
    token: str | None = attrs.field(default=None, repr=lambda v: "<hidden>" if v else "None")


@attrs.frozen(kw_only=True)
class BankDetails:
    """The acquirer's answer.

    In v2 it is the object named after the transaction type (``payment``,
    ``refund``, ...); in v3 the inner ``transaction`` object.
    """

    status: str | None = None
    message: str | None = None
    auth_code: str | None = None
    bank_code: str | None = None
    rrn: str | None = None
    ref_id: str | None = None
    amount: int | None = None
    currency: str | None = None
    billing_descriptor: str | None = None
    gateway_id: int | None = None


@attrs.frozen(kw_only=True)
class ThreeDSecure:
    """The ``three_d_secure_verification`` section."""

    status: str | None = None
    message: str | None = None
    ve_status: str | None = None
    pa_status: str | None = None
    eci: str | None = None
    acs_url: str | None = None
    xid: str | None = None
    cavv: str | None = None
    fail_reason: str | None = None


@attrs.frozen(kw_only=True)
class BeProtected:
    """The ``be_protected_verification`` section: the shop's risk rules on the transaction.

    The whole result of a `Checkup`; payments carry it too where beProtected runs.

    Attributes:
        status: ``successful`` (the rules let it through) or ``failed``.
        message: why, when it failed.
        white_black_list: ``email``, ``ip``, ``card_number`` → ``absent``, ``white`` or ``black``.
        rules: the shop's rule sets → rule → outcome.
        limit: the volume and velocity limits checked.
    """

    status: str | None = None
    message: str | None = None
    white_black_list: Mapping[str, Any] | None = None
    rules: Mapping[str, Any] | None = None
    limit: Mapping[str, Any] | None = None


@attrs.frozen(kw_only=True)
class AvsCvc:
    """The ``avs_cvc_verification`` section: the address and card-code checks' result codes."""

    avs_result_code: str | None = None
    cvc_result_code: str | None = None


@attrs.frozen(kw_only=True)
class Transaction:
    """A transaction, from the classic ``{"transaction": {...}}`` or the flat v3 answer.

    A declined payment is a transaction with ``status == "failed"``; one that
    waits for the customer (3-D Secure) has ``status == "incomplete"`` and a
    ``redirect_url``. Amounts are in minor units. ``raw`` holds the whole
    answer as decoded, so no field is ever lost.

    The gateway's sections have shorter names here: ``card`` (``credit_card``
    in v2, ``payment_method`` in v3), ``bank`` (the one named after the type
    in v2, the inner ``transaction`` in v3), ``three_d_secure``
    (``three_d_secure_verification``), ``be_protected``
    (``be_protected_verification``), ``avs_cvc`` (``avs_cvc_verification``).
    """

    status: TransactionStatus
    uid: str | None = None
    id: str | None = None
    type: str | None = None
    payment_method_type: str | None = None
    amount: int | None = None
    currency: str | None = None
    description: str | None = None
    tracking_id: str | None = None
    message: str | None = None
    code: str | None = None
    friendly_message: str | None = None
    test: bool | None = None
    parent_uid: str | None = None
    reason: str | None = None
    redirect_url: str | None = None
    receipt_url: str | None = None
    language: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    paid_at: dt.datetime | None = None
    expired_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    settled_at: dt.datetime | None = None
    card: Card | None = None
    bank: BankDetails | None = None
    three_d_secure: ThreeDSecure | None = None
    be_protected: BeProtected | None = None
    avs_cvc: AvsCvc | None = None
    additional_data: Mapping[str, Any] | None = attrs.field(default=None, repr=False, hash=False)
    customer: Mapping[str, Any] | None = attrs.field(default=None, repr=False, hash=False)
    billing_address: Mapping[str, Any] | None = attrs.field(default=None, repr=False, hash=False)
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False, hash=False)

    @property
    def successful(self) -> bool:
        """``status == "successful"``."""
        return self.status == "successful"

    @property
    def failed(self) -> bool:
        """``status == "failed"``: processed, and declined."""
        return self.status == "failed"

    @property
    def incomplete(self) -> bool:
        """``status == "incomplete"``: waiting for the customer, e.g. 3-D Secure."""
        return self.status == "incomplete"


@attrs.frozen(kw_only=True)
class Balance:
    """The answer of a balance query: the acquirer account's balance."""

    status: str | None = None
    gateway_id: int | None = None
    account: str | None = None
    amount: int | None = None
    currency: str | None = None
    bank_info: Mapping[str, Any] | None = attrs.field(default=None, repr=False, hash=False)
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False, hash=False)
