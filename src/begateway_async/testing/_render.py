"""The simulated gateway's answers: an outcome in the classic or the flat v3 shape."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ._books import Outcome, TxRecord

__all__ = ["iso", "render"]


def iso(epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def render(outcome: Outcome, *, api_version: int, base_url: str, gateway_id: int) -> dict[str, Any]:
    """The answer body of an outcome, in the classic or the flat v3 shape."""
    if outcome.error is not None:
        body = {k: v for k, v in outcome.error.items() if k != "_code"}
        if api_version == 3:  # noqa: PLR2004
            code = outcome.error.get("_code", "E.1000")
            body = {"code": code, "friendly_message": "Invalid request params", **body}
        return body
    if outcome.balance is not None:
        return {"status": "successful", "result": outcome.balance}
    if outcome.records is not None:
        return {
            "transactions": [
                _flat(r, base_url, v3=False, gateway_id=gateway_id) for r in outcome.records
            ]
        }
    assert outcome.record is not None  # noqa: S101 - one of them is always set
    if api_version == 3:  # noqa: PLR2004
        return _flat(outcome.record, base_url, v3=True, gateway_id=gateway_id)
    return {"transaction": _flat(outcome.record, base_url, v3=False, gateway_id=gateway_id)}


def _flat(record: TxRecord, base_url: str, *, v3: bool, gateway_id: int) -> dict[str, Any]:
    bank = {
        "status": record.status,
        "message": record.message,
        "auth_code": "654321" if record.status == "successful" else None,
        "bank_code": "05",
        "rrn": record.uid[:8],
        "ref_id": record.uid[-8:],
        "amount": record.amount,
        "currency": record.currency,
        "billing_descriptor": "SIMULATOR",
        "gateway_id": gateway_id,
    }
    receipt = f"{base_url}/customer/transactions/{record.uid}"
    body: dict[str, Any] = {
        "uid": record.uid,
        "status": record.status,
        "type": record.type,
        "amount": record.amount,
        "currency": record.currency,
        "description": record.description,
        "tracking_id": record.tracking_id,
        "message": record.message,
        "test": record.test,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.created_at),
        "paid_at": iso(record.created_at) if record.status == "successful" else None,
        "language": record.language,
        "parent_uid": record.parent_uid,
        "reason": record.reason,
        "redirect_url": record.redirect_url,
        "customer": record.customer,
        "billing_address": record.billing_address,
        **record.extra,
    }
    if record.three_ds is not None:
        body["three_d_secure_verification"] = dict(record.three_ds)
    if v3:
        code = {"successful": "S.0000", "failed": "F.0105", "incomplete": "P.9998"}
        body["code"] = code.get(record.status, "E.1000")
        body["friendly_message"] = record.message
        body["payment_method"] = (
            {"payment_method_type": "credit_card", **record.card} if record.card else None
        )
        body["transaction"] = bank
        body["links"] = {"receipt_url": receipt}
    else:
        body["id"] = record.uid
        body["receipt_url"] = receipt
        body["credit_card"] = record.card
        body[record.type] = bank
    return body
