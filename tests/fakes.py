"""Answers of a fake gateway, and the ready-made cards and requests every test uses."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

import begateway_async as bga

BASE = "https://gw.test"
SHOP_ID = 361
SECRET = "b8647b68898b084b836474ed8d61ffe117c9a01168d867f24953b776ddcb134d"


# --- answers of the fake gateway ----------------------------------------------------------


def ack(request_id: str = "r1", **extra: Any) -> dict[str, Any]:
    return {
        "status": "processing",
        "request_id": request_id,
        "status_url": f"{BASE}/async/status/{request_id}",
        "response_url": f"{BASE}/async/result/{request_id}",
        **extra,
    }


def transaction(
    uid: str = "u1", status: str = "successful", kind: str = "payment", **extra: Any
) -> dict[str, Any]:
    return {
        "transaction": {
            "uid": uid,
            "status": status,
            "type": kind,
            "amount": 100,
            "currency": "USD",
            "description": "Order 42",
            "tracking_id": "order-42",
            "message": "Successfully processed",
            "test": True,
            "created_at": "2026-01-01T00:00:01.123Z",
            "credit_card": {"last_4": "0000", "first_1": "4", "brand": "visa", "token": "tok_1"},
            kind: {"status": status, "rrn": "123456789", "auth_code": "654321", "gateway_id": 645},
            **extra,
        }
    }


def processing(request_id: str = "r1") -> dict[str, Any]:
    return {"status": "processing", "request_id": request_id}


def unknown(request_id: str = "r1") -> httpx.Response:
    return httpx.Response(404, json={"status": "unknown", "request_id": request_id})


def notification(tx: dict[str, Any] | None = None) -> tuple[bytes, dict[str, str]]:
    """The gateway's notification of ``tx`` (the payment by default): body and headers.

    HTTP Basic with the shop's credentials; no signature (none configured).
    """
    credentials = base64.b64encode(f"{SHOP_ID}:{SECRET}".encode()).decode()
    body = json.dumps(transaction() if tx is None else tx).encode()
    return body, {"authorization": f"Basic {credentials}", "content-type": "application/json"}


def sent_json(request: httpx.Request) -> Any:
    return json.loads(request.content)


# --- ready-made requests (the one place tests build them) ----------------------------------

#: The test cards: approved, declined, 3-D Secure (approved once the customer passes it).
GOOD = "4200000000000000"
DECLINED = "4005550000000019"
THREE_DS = "4012000000001006"


def card(number: str = GOOD, **fields: Any) -> bga.CreditCard:
    """A test card that expires in 2030 (``fields`` override the rest)."""
    values: dict[str, Any] = {
        "verification_value": "123",
        "holder": "John Doe",
        "exp_month": 1,
        "exp_year": 2030,
        **fields,
    }
    return bga.CreditCard(number=number, **values)


def payment(amount: int = 100, number: str = GOOD, **fields: Any) -> bga.Payment:
    """A payment of ``amount`` cents by the test card ``number`` (``fields`` override the rest)."""
    values: dict[str, Any] = {
        "currency": "USD",
        "description": "Order 42",
        "tracking_id": "order-42",
        **fields,
    }
    values.setdefault("credit_card", card(number))
    return bga.Payment(amount=amount, **values)
