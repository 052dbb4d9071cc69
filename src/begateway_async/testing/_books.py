"""What the simulated gateway's books hold: the test cards, transactions, outcomes, refusals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

__all__ = [
    "CARDS",
    "CARD_OPERATIONS",
    "CHILD_OPERATIONS",
    "DUPLICATE_WINDOW",
    "PAYOUT_OPERATIONS",
    "Invalid",
    "Outcome",
    "TxRecord",
    "error_body",
    "require_envelope",
]

#: Test card → (3-D Secure enrolment, final status). Enrolled cards answer
#: ``incomplete`` with a ``redirect_url`` first (the customer must pass 3-D
#: Secure); the final status is what completing 3-D Secure gives.
CARDS: Final[Mapping[str, tuple[str | None, str]]] = {
    "4200000000000000": (None, "successful"),
    "4005550000000019": (None, "failed"),
    "9112300000000000": (None, "successful"),
    "4012000000001006": ("Y", "successful"),
    "4012000000001055": ("A", "successful"),
    "4012000000001097": ("Y", "successful"),
    "4012000000003010": ("Y", "successful"),
    "4012000000001022": ("U", "failed"),
    "4012000000001030": ("R", "failed"),
    "4012000000001014": ("N", "failed"),
    "5204240000015003": ("Y", "successful"),
    "5204240000015011": ("A", "successful"),
    "5204240000015029": ("Y", "successful"),
    "5204240000015045": ("U", "failed"),
    "5204240000015052": ("R", "failed"),
    "5204240000015060": ("N", "failed"),
}

CARD_OPERATIONS: Final = {
    "payments": "payment",
    "authorizations": "authorization",
    "tokenizations": "tokenization",
    "checkups": "checkup",
}
CHILD_OPERATIONS: Final = {
    "captures": "capture",
    "voids": "void",
    "refunds": "refund",
    "chargebacks": "chargeback",
}
PAYOUT_OPERATIONS: Final = {"payouts": "payout", "credits": "credit"}
DUPLICATE_WINDOW: Final = 30.0


@attrs.define(slots=True)
class TxRecord:
    """One transaction in the books."""

    uid: str
    type: str
    status: str
    amount: int
    currency: str
    created_at: float
    description: str | None = None
    tracking_id: str | None = None
    message: str | None = None
    test: bool = False
    parent_uid: str | None = None
    reason: str | None = None
    card: dict[str, Any] | None = None
    three_ds: dict[str, Any] | None = None
    redirect_url: str | None = None
    final_status: str | None = None
    notification_url: str | None = None
    return_url: str | None = None
    customer: Mapping[str, Any] | None = None
    billing_address: Mapping[str, Any] | None = None
    language: str = "en"
    captured: int = 0
    refunded: int = 0
    voided: int = 0
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Outcome:
    """What an operation gave: a record, a list, a balance, or an error (status and body)."""

    status_code: int = 200
    record: TxRecord | None = None
    records: list[TxRecord] | None = None
    balance: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Whether the answer is a 200 result (kept 24 h) rather than an error (served once)."""
        return self.status_code == 200  # noqa: PLR2004


class Invalid(Exception):  # noqa: N818 - internal control flow
    """A request the gateway refuses: the ``errors`` of its answer, the v3 code, the status."""

    def __init__(self, errors: dict[str, Any], *, code: str = "E.1025", status: int = 422) -> None:
        super().__init__(errors)
        self.errors = errors
        self.code = code
        self.status = status


def _message(errors: Mapping[str, Any], prefix: str = "") -> list[str]:
    parts: list[str] = []
    for key, value in errors.items():
        name = f"{prefix}{key}".replace("_", " ").replace(".", " ")
        if isinstance(value, Mapping):
            parts += _message(value, f"{prefix}{key}.")
        elif key == "base":
            parts += [str(v) for v in value]
        else:
            parts += [f"{name[:1].upper()}{name[1:]} {v}" for v in value]
    return parts


def error_body(errors: Mapping[str, Any], *, code: str = "E.1025") -> dict[str, Any]:
    """The documented ``{message, errors}`` body (the v3 ``code`` is added when rendering)."""
    return {"message": ". ".join(_message(errors)) + ".", "errors": dict(errors), "_code": code}


def require_envelope(request: Any) -> None:
    """Refuse a request without its ``{'request': {...}}`` envelope."""
    if not isinstance(request, Mapping):
        raise Invalid({"base": ["Request section missing"]}, code="E.1017")
