"""The simulated gateway's books: validation, test cards, parents, tokens, duplicates.

Pure and synchronous: `Ledger.process` takes one operation's ``request``
object and the time, and returns an `Outcome` (a transaction, a list of
them, a balance, or an error body). The ASGI layer decides when it is
served and in which shape.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Mapping
from typing import Any, Final

from ._books import (
    CARD_OPERATIONS,
    CARDS,
    CHILD_OPERATIONS,
    DUPLICATE_WINDOW,
    PAYOUT_OPERATIONS,
    Invalid,
    Outcome,
    TxRecord,
    error_body,
    require_envelope,
)
from ._render import render

__all__ = ["Ledger"]

_CURRENCY: Final = re.compile(r"[A-Z]{3}")


class Ledger:
    """The books of one simulated gateway: every shop's transactions, tokens and balances."""

    def __init__(self, *, gateway_id: int = 645) -> None:
        self.transactions: dict[str, TxRecord] = {}
        self.by_tracking_id: dict[tuple[str, str], list[str]] = {}
        self.owner: dict[str, str] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.recent: dict[tuple[Any, ...], float] = {}
        self.gateway_id = gateway_id

    # --- entry point ---------------------------------------------------------------------

    def process(  # noqa: PLR0911 - one return per kind of operation
        self, shop: str, kind: str, name: str, request: Any, *, now: float, base_url: str
    ) -> Outcome:
        """Run one operation for ``shop`` and book its effects.

        Args:
            shop: the shop id the request was authenticated as.
            kind: ``"transactions"``, ``"query"``, ``"tracking_id"`` or ``"balance"``.
            name: the path's last part (``"payments"``, a uid, a tracking_id, ...).
            request: the decoded ``request`` object (None for GET queries).
            now: epoch seconds.
            base_url: the gateway's own URL, for ``redirect_url``.
        """
        try:
            if kind == "query":
                return self._query(shop, name)
            if kind == "tracking_id":
                return self._by_tracking_id(shop, name)
            require_envelope(request)
            if kind == "balance":
                return self._balance(request)
            if name in CARD_OPERATIONS:
                return self._card_operation(shop, CARD_OPERATIONS[name], request, now, base_url)
            if name in CHILD_OPERATIONS:
                return self._child_operation(shop, CHILD_OPERATIONS[name], request, now)
            if name in PAYOUT_OPERATIONS:
                return self._payout(shop, PAYOUT_OPERATIONS[name], request, now)
        except Invalid as exc:
            return Outcome(exc.status, error=error_body(exc.errors, code=exc.code))
        return Outcome(404, error={"message": "Not found", "_code": "E.1016"})

    def complete_three_d_secure(self, uid: str, *, passed: bool = True) -> TxRecord | None:
        """Finish a pending 3-D Secure transaction: its card's final status, or failed."""
        record = self.transactions.get(uid)
        if record is None or record.status != "incomplete" or record.final_status is None:
            return None
        record.status = record.final_status if passed else "failed"
        record.message = (
            self._status_message(record.type, record.status)
            if passed
            else "3-D Secure authentication failed"
        )
        if record.three_ds is not None:
            record.three_ds["status"] = record.status
        record.redirect_url = None
        return record

    # --- validation ----------------------------------------------------------------------

    @staticmethod
    def _amount(request: Mapping[str, Any], errors: dict[str, Any]) -> int:
        amount = request.get("amount")
        if amount is None:
            errors["amount"] = ["can't be blank"]
        elif isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            errors["amount"] = ["must be greater than 0"]
        else:
            return amount
        return 0

    @staticmethod
    def _currency(request: Mapping[str, Any], errors: dict[str, Any]) -> str:
        currency = request.get("currency")
        if not currency:
            errors["currency"] = ["can't be blank"]
        elif not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
            errors["currency"] = ["is invalid"]
        else:
            return currency
        return ""

    def _card(
        self, request: Mapping[str, Any], key: str, errors: dict[str, Any], now: float
    ) -> dict[str, Any] | None:
        card = request.get(key)
        if not isinstance(card, Mapping):
            errors[key] = {"number": ["can't be blank"]}
            return None
        token = card.get("token")
        if token:
            stored = self.tokens.get(str(token))
            if stored is None:
                errors[key] = {"token": ["does not exist"]}
                return None
            return dict(stored)
        problems: dict[str, list[str]] = {}
        number = card.get("number")
        if not isinstance(number, str) or not number.isdigit() or not 12 <= len(number) <= 19:  # noqa: PLR2004
            problems["number"] = ["is invalid"]
        month, year = card.get("exp_month"), card.get("exp_year")
        if not (isinstance(month, str | int) and str(month).isdigit() and 1 <= int(month) <= 12):  # noqa: PLR2004
            problems["exp_month"] = ["is invalid"]
        if not (isinstance(year, str | int) and str(year).isdigit() and len(str(year)) == 4):  # noqa: PLR2004
            problems["exp_year"] = ["Invalid. Format should be: yyyy"]
        elif int(year) < dt.datetime.fromtimestamp(now, dt.UTC).year:
            problems["exp_year"] = ["Invalid. Format should be: yyyy. Date is expired"]
        cvv = card.get("verification_value")
        if cvv is not None and not (isinstance(cvv, str) and cvv.isdigit()):
            problems["verification_value"] = ["is not a number"]
        if problems:
            errors[key] = problems
            return None
        assert isinstance(number, str)  # noqa: S101 - checked above
        return {
            "number": number,
            "holder": card.get("holder"),
            "exp_month": int(str(month)),
            "exp_year": int(str(year)),
        }

    def _duplicate(self, key: tuple[Any, ...], request: Mapping[str, Any], now: float) -> None:
        if request.get("duplicate_check") is False:
            return
        seen = self.recent.get(key)
        if seen is not None and now - seen < DUPLICATE_WINDOW:
            raise Invalid({"base": ["Duplicate transaction"]}, code="E.1018")
        self.recent[key] = now
        if len(self.recent) > 100_000:  # noqa: PLR2004 - forget old entries now and then
            self.recent = {k: t for k, t in self.recent.items() if now - t < DUPLICATE_WINDOW}

    # --- operations ----------------------------------------------------------------------

    def _new_record(
        self, shop: str, kind: str, request: Mapping[str, Any], **fields: Any
    ) -> TxRecord:
        record = TxRecord(
            uid=str(uuid.uuid4()),
            type=kind,
            tracking_id=request.get("tracking_id"),
            description=request.get("description"),
            test=bool(request.get("test", False)),
            language=str(request.get("language") or "en"),
            customer=request.get("customer"),
            billing_address=request.get("billing_address"),
            notification_url=request.get("notification_url"),
            return_url=request.get("return_url"),
            **fields,
        )
        self.transactions[record.uid] = record
        self.owner[record.uid] = shop
        if record.tracking_id:
            self.by_tracking_id.setdefault((shop, record.tracking_id), []).append(record.uid)
        return record

    @staticmethod
    def _status_message(kind: str, status: str) -> str | None:
        if status == "successful":
            return "Successfully processed"
        if status == "failed":
            return f"{kind.capitalize()} was declined"
        return None

    def _issue_token(self, card: dict[str, Any]) -> str:
        token = str(uuid.uuid4())
        self.tokens[token] = dict(card)
        return token

    def _card_view(self, card: dict[str, Any], token: str | None) -> dict[str, Any]:
        number: str = card["number"]
        return {
            "holder": card.get("holder"),
            "stamp": hashlib.sha256(number.encode()).hexdigest(),
            "brand": "master" if number.startswith("5") else "visa",
            "last_4": number[-4:],
            "first_1": number[:1],
            "bin": number[:6],
            "exp_month": card.get("exp_month"),
            "exp_year": card.get("exp_year"),
            "token": token,
        }

    def _card_request(
        self, shop: str, kind: str, request: Mapping[str, Any], card_key: str, now: float
    ) -> tuple[int, str, dict[str, Any]]:
        """Validate the money, description and card of a request; check for a duplicate."""
        errors: dict[str, Any] = {}
        amount = self._amount(request, errors)
        currency = self._currency(request, errors)
        if not request.get("description"):
            errors["description"] = ["can't be blank"]
        if kind == "checkup" and not request.get("tracking_id"):
            errors["tracking_id"] = ["can't be blank"]
        card = self._card(request, card_key, errors, now)
        if errors or card is None:
            raise Invalid(errors)
        self._duplicate((shop, kind, amount, card["number"]), request, now)
        return amount, currency, card

    def _card_operation(
        self, shop: str, kind: str, request: Mapping[str, Any], now: float, base_url: str
    ) -> Outcome:
        amount, currency, card = self._card_request(shop, kind, request, "credit_card", now)
        enrolled, final = CARDS.get(card["number"], (None, "successful"))
        if card.get("exp_month") == 10:  # noqa: PLR2004 - the demo gateway's decline rule
            enrolled, final = None, "failed"
        status = "incomplete" if enrolled is not None else final
        token = self._issue_token(card) if status != "failed" else None
        record = self._new_record(
            shop,
            kind,
            request,
            status=status,
            amount=amount,
            currency=currency,
            created_at=now,
            card=self._card_view(card, token),
            final_status=final if status == "incomplete" else None,
        )
        record.message = self._status_message(kind, status)
        if enrolled is not None:
            record.three_ds = {"status": "incomplete", "ve_status": enrolled, "message": None}
            record.redirect_url = f"{base_url}/process/{record.uid}"
        if kind == "checkup":
            record.extra["be_protected_verification"] = {"status": status, "message": None}
        return Outcome(record=record)

    def _child_operation(
        self, shop: str, kind: str, request: Mapping[str, Any], now: float
    ) -> Outcome:
        errors: dict[str, Any] = {}
        amount = self._amount(request, errors)
        parent_uid = request.get("parent_uid")
        if not parent_uid:
            errors["parent_uid"] = ["can't be blank"]
        if kind == "refund" and not request.get("reason"):
            errors["reason"] = ["can't be blank"]
        if errors:
            raise Invalid(errors)
        parent = self._parent(shop, kind, str(parent_uid), amount)
        self._duplicate((shop, kind, amount, parent.uid), request, now)
        if kind == "capture":
            parent.captured += amount
        elif kind == "void":
            parent.voided += amount
        elif kind == "refund":
            parent.refunded += amount
        record = self._new_record(
            shop,
            kind,
            request,
            status="successful",
            amount=amount,
            currency=parent.currency,
            created_at=now,
            parent_uid=parent.uid,
            reason=request.get("reason"),
            card=parent.card,
        )
        record.message = self._status_message(kind, "successful")
        return Outcome(record=record)

    def _parent(self, shop: str, kind: str, parent_uid: str, amount: int) -> TxRecord:
        """The parent of a child operation, checked: owner, type, status, amount left."""
        parent = self.transactions.get(parent_uid)
        if parent is None or self.owner.get(parent.uid) != shop:
            raise Invalid({"parent_uid": ["not found"]}, code="E.1027")
        allowed = {"capture": {"authorization"}, "void": {"authorization"}}.get(
            kind, {"payment", "capture"}
        )
        if parent.type not in allowed or parent.status != "successful":
            raise Invalid(
                {"parent_uid": [f"is not a successful {' or '.join(sorted(allowed))}"]},
                code="E.1027",
            )
        if kind in ("capture", "void"):
            available = parent.amount - parent.captured - parent.voided
        else:
            available = parent.amount - parent.refunded
        if amount > available:
            raise Invalid({"amount": [f"can't be greater than {available}"]})
        return parent

    def _payout(self, shop: str, kind: str, request: Mapping[str, Any], now: float) -> Outcome:
        key = "recipient_credit_card" if "recipient_credit_card" in request else "credit_card"
        amount, currency, card = self._card_request(shop, kind, request, key, now)
        status = "failed" if CARDS.get(card["number"], (None, ""))[1] == "failed" else "successful"
        record = self._new_record(
            shop,
            kind,
            request,
            status=status,
            amount=amount,
            currency=currency,
            created_at=now,
            card=self._card_view(card, None),
        )
        record.message = self._status_message(kind, status)
        return Outcome(record=record)

    def _query(self, shop: str, uid: str) -> Outcome:
        record = self.transactions.get(uid)
        if record is None or self.owner.get(uid) != shop:
            return Outcome(404, error={"message": "Record not found", "_code": "E.1004"})
        return Outcome(record=record)

    def _by_tracking_id(self, shop: str, tracking_id: str) -> Outcome:
        uids = self.by_tracking_id.get((shop, tracking_id), [])
        return Outcome(records=[self.transactions[u] for u in reversed(uids[-10:])])

    def _balance(self, request: Mapping[str, Any]) -> Outcome:
        given = [k for k in ("account", "currency", "gateway_id") if request.get(k)]
        if len(given) != 1:
            raise Invalid({"base": ["Give one of account, currency or gateway_id"]})
        currency = str(request.get("currency") or "USD")
        return Outcome(
            balance={
                "gatewayId": int(request.get("gateway_id") or self.gateway_id),
                "account": str(request.get("account") or "40701810842020395221"),
                "amount": 6_623_871_674,
                "currency": currency,
                "bankInfo": {"Account": "40701810842020395221", "Amount": 66238716.74},
            }
        )

    def render(self, outcome: Outcome, *, api_version: int, base_url: str) -> dict[str, Any]:
        """The answer body of an outcome, in the classic or the flat v3 shape."""
        return render(
            outcome, api_version=api_version, base_url=base_url, gateway_id=self.gateway_id
        )
