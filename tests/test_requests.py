"""Request classes: validation before sending, and the URL, body and headers of each operation."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import httpx
import pytest

import begateway_async as bga
from begateway_async._serde import request_body
from fakes import BASE, SECRET, SHOP_ID, ack, card, payment, sent_json

pytestmark = pytest.mark.anyio

TOKEN_CARD = bga.CreditCard(token="tok_1")
CARD_WIRE = {
    "number": "4200000000000000",
    "verification_value": "123",
    "holder": "John Doe",
    "exp_month": "01",
    "exp_year": "2030",
}
CARD_FIELDS = {"amount": 100, "currency": "USD", "description": "Order 42", "tracking_id": "t-1"}
CARD_BODY = {**CARD_FIELDS, "credit_card": CARD_WIRE}

OPERATIONS: list[tuple[bga.Request[Any], str, str, dict[str, Any] | None]] = [
    (
        bga.Payment(**CARD_FIELDS, credit_card=card()),
        "POST",
        "/async/transactions/payments",
        CARD_BODY,
    ),
    (
        bga.Authorization(**CARD_FIELDS, credit_card=card()),
        "POST",
        "/async/transactions/authorizations",
        CARD_BODY,
    ),
    (
        bga.Tokenization(**CARD_FIELDS, credit_card=card()),
        "POST",
        "/async/transactions/tokenizations",
        CARD_BODY,
    ),
    (
        bga.Checkup(**CARD_FIELDS, credit_card=card()),
        "POST",
        "/async/transactions/checkups",
        CARD_BODY,
    ),
    (
        bga.Capture(parent_uid="p-1", amount=50),
        "POST",
        "/async/transactions/captures",
        {"parent_uid": "p-1", "amount": 50},
    ),
    (
        bga.Void(parent_uid="p-1", amount=50),
        "POST",
        "/async/transactions/voids",
        {"parent_uid": "p-1", "amount": 50},
    ),
    (
        bga.Refund(parent_uid="p-1", amount=50, reason="customer request"),
        "POST",
        "/async/transactions/refunds",
        {"parent_uid": "p-1", "amount": 50, "reason": "customer request"},
    ),
    (
        bga.Chargeback(parent_uid="p-1", amount=50, reason="fraud"),
        "POST",
        "/async/transactions/chargebacks",
        {"parent_uid": "p-1", "amount": 50, "reason": "fraud"},
    ),
    (
        bga.Payout(**CARD_FIELDS, recipient_credit_card=TOKEN_CARD),
        "POST",
        "/async/transactions/payouts",
        {**CARD_FIELDS, "recipient_credit_card": {"token": "tok_1"}},
    ),
    (
        bga.Payout(**CARD_FIELDS, credit_card=TOKEN_CARD, legacy=True),
        "POST",
        "/async/transactions/credits",
        {**CARD_FIELDS, "credit_card": {"token": "tok_1"}},
    ),
    (bga.StatusQuery(uid="u-1"), "GET", "/async/transactions/u-1", None),
    (
        bga.TrackingIdQuery(tracking_id="order 42/a"),
        "GET",
        "/async/v2/transactions/tracking_id/order%2042%2Fa",
        None,
    ),
    (bga.BalanceQuery(currency="USD"), "POST", "/async/balance", {"currency": "USD"}),
]


@pytest.mark.parametrize(
    "case",
    OPERATIONS,
    ids=[
        f"{r.operation}{'-legacy' if getattr(r, 'legacy', False) else ''}" for r, *_ in OPERATIONS
    ],
)
async def test_operation_wire_format(open_gateway, router, case):
    """Each operation: its /async path, the {"request": ...} body, Basic auth, a RequestID."""
    request_, method, path, expected = case
    route = router.route(method=method).respond(200, json=ack())
    async with open_gateway(drain=False) as gw:
        job = await gw.submit(request_)
    assert job.request_id == "r1"
    sent = route.calls.last.request
    assert sent.url.raw_path.decode() == path
    expected_auth = base64.b64encode(f"{SHOP_ID}:{SECRET}".encode()).decode()
    assert sent.headers["authorization"] == f"Basic {expected_auth}"
    assert sent.headers["accept"] == "application/json"
    assert sent.headers["requestid"]
    if expected is None:
        assert sent.content == b""
    else:
        assert sent.headers["content-type"] == "application/json"
        assert sent_json(sent) == {"request": expected}
    assert ("x-api-version" in sent.headers) == isinstance(request_, bga.BalanceQuery)
    if isinstance(request_, bga.BalanceQuery):
        assert sent.headers["x-api-version"] == "2"


async def test_each_submit_gets_a_fresh_request_id(open_gateway, router):
    """Two logical submits of the same request carry two different RequestIDs."""
    route = router.post("/async/transactions/payments").respond(200, json=ack())
    async with open_gateway(drain=False) as gw:
        await gw.submit(payment())
        router.post("/async/transactions/payments").respond(200, json=ack("r2"))
        await gw.submit(payment())
    ids = {call.request.headers["requestid"] for call in route.calls}
    assert len(ids) == 2


async def test_api_version_header(open_gateway, router):
    """api_version=3 is sent on every request, except where an operation needs its own."""
    pay = router.post("/async/transactions/payments").respond(200, json=ack())
    balance = router.post("/async/balance").respond(200, json=ack("r2"))
    async with open_gateway(drain=False, api_version=3) as gw:
        await gw.submit(payment())
        await gw.submit(bga.BalanceQuery(account="40701810842020395221"))
    assert pay.calls.last.request.headers["x-api-version"] == "3"
    assert balance.calls.last.request.headers["x-api-version"] == "2"


def test_full_payment_body():
    """Nested parts, dates and extra fields are written the way the gateway reads them."""
    request = payment(
        customer=bga.Customer(
            ip="127.0.0.1", email="jd@example.com", birth_date=dt.date(1980, 2, 3)
        ),
        billing_address=bga.BillingAddress(first_name="John", country="US", zip="10001"),
        additional_data=bga.AdditionalData(contract=["recurring"], receipt_text=["Thank you"]),
        expired_at=dt.datetime(2026, 2, 1, 12, 0, tzinfo=dt.UTC),
        duplicate_check=False,
        test=True,
        language="en",
        notification_url="https://shop.example/webhook",
        extra={"dynamic_field": {"a": 1}},
    )
    data = sent_json(httpx.Request("POST", BASE, content=request_body(request)))["request"]
    assert data["customer"] == {
        "ip": "127.0.0.1",
        "email": "jd@example.com",
        "birth_date": "1980-02-03",
    }
    assert data["billing_address"] == {"first_name": "John", "country": "US", "zip": "10001"}
    assert data["additional_data"] == {"contract": ["recurring"], "receipt_text": ["Thank you"]}
    assert data["expired_at"] == "2026-02-01T12:00:00+00:00"
    assert data["duplicate_check"] is False
    assert data["test"] is True
    assert data["dynamic_field"] == {"a": 1}
    assert "extra" not in data


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: payment(amount=0), "Payment.amount"),
        (lambda: payment(amount=1.5), "Payment.amount"),
        (lambda: payment(amount=True), "Payment.amount"),
        (lambda: payment(currency="usd"), "Payment.currency"),
        (lambda: payment(description="  "), "Payment.description"),
        (lambda: payment(description="x" * 256), "Payment.description"),
        (lambda: payment(credit_card=None), "Payment.credit_card"),
        (lambda: payment(credit_card="4200000000000000"), "Payment.credit_card"),
        (lambda: payment(notification_url="ftp://x"), "Payment.notification_url"),
        (lambda: payment(expired_at=dt.datetime(2026, 1, 1)), "Payment.expired_at"),  # noqa: DTZ001
        (lambda: payment(extra={"amount": 5}), "Payment.extra"),
        (lambda: payment(language="English"), "Payment.language"),
        (lambda: payment(test="yes"), "Payment.test"),
        (
            lambda: bga.CreditCard(number="4200 0000", exp_month=1, exp_year=2030),
            "CreditCard.number",
        ),
        (lambda: bga.CreditCard(number="42", exp_month=1, exp_year=2030), "CreditCard.number"),
        (
            lambda: bga.CreditCard(number="4200000000000000", exp_month=13, exp_year=2030),
            "CreditCard.exp_month",
        ),
        (
            lambda: bga.CreditCard(number="4200000000000000", exp_month=1, exp_year=30),
            "CreditCard.exp_year",
        ),
        (lambda: bga.CreditCard(number="4200000000000000", exp_year=2030), "CreditCard.exp_month"),
        (lambda: bga.CreditCard(holder="J D"), "CreditCard.number"),
        (
            lambda: bga.CreditCard(token="t", verification_value="12"),
            "CreditCard.verification_value",
        ),
        (lambda: bga.Customer(email="nobody"), "Customer.email"),
        (lambda: bga.BillingAddress(country="USA"), "BillingAddress.country"),
        (lambda: bga.AdditionalData(contract="recurring"), "AdditionalData.contract"),
        (lambda: bga.Refund(parent_uid="p", amount=1, reason=""), "Refund.reason"),
        (lambda: bga.Capture(parent_uid="../admin", amount=1), "Capture.parent_uid"),
        (lambda: bga.StatusQuery(uid="a/b"), "StatusQuery.uid"),
        (lambda: bga.TrackingIdQuery(tracking_id=""), "TrackingIdQuery.tracking_id"),
        (
            lambda: bga.Checkup(**{**CARD_FIELDS, "tracking_id": None}, credit_card=card()),
            "Checkup.tracking_id",
        ),
        (lambda: bga.Payout(**CARD_FIELDS), "Payout.recipient_credit_card"),
        (bga.BalanceQuery, "BalanceQuery"),
        (lambda: bga.BalanceQuery(currency="USD", account="1"), "BalanceQuery"),
    ],
)
def test_invalid_requests_name_the_field(build, field):
    """A bad value raises InvalidRequest (a ValueError) naming the field, at construction."""
    with pytest.raises(bga.InvalidRequest) as info:
        build()
    assert info.value.field == field
    assert field in str(info.value)
    assert isinstance(info.value, ValueError)


async def test_invalid_request_sends_nothing(open_gateway, router):
    """Submitting something that is not a request fails before any HTTP request."""
    async with open_gateway() as gw:
        with pytest.raises(bga.InvalidRequest, match="request"):
            await gw.submit({"amount": 100})  # type: ignore[arg-type]
        with pytest.raises(bga.InvalidRequest, match="idempotency_key"):
            await gw.submit(payment(), idempotency_key="")
        with pytest.raises(bga.InvalidRequest, match="must be a Refund"):
            await gw.refund(payment())  # type: ignore[arg-type]
    assert not router.calls


def test_card_repr_hides_secrets():
    """A card's repr shows the last four digits only; expiry, CVV, token and holder never."""
    text = repr(payment()) + repr(bga.CreditCard(token="tok_secret_1", verification_value="999"))
    assert "2030" not in text  # the expiry year of fakes.card()
    assert "4200000000000000" not in text
    assert "****0000" in text
    assert "123" not in text
    assert "999" not in text
    assert "tok_secret_1" not in text
    assert "John Doe" not in text
    assert "secret" not in repr(
        bga.EncryptedCreditCard(number="$enc$secret", exp_month="$e", exp_year="$e")
    )


def test_requests_are_frozen():
    """Requests are immutable once validated."""
    request = payment()
    with pytest.raises(AttributeError):
        request.amount = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("build", "secret"),
    [
        (lambda: bga.CreditCard(number="4200-0000-0000-0000", exp_month=1, exp_year=2030), "4200"),
        (lambda: bga.CreditCard(number=4200000000000000, exp_month=1, exp_year=2030), "4200"),
        (lambda: bga.CreditCard(token="t", verification_value=739), "739"),
        (lambda: bga.CreditCard(token="t", verification_value="7x9"), "7x9"),
        (lambda: bga.CreditCard(number="4200000000000000", exp_month=14, exp_year=2030), "14"),
        (lambda: bga.CreditCard(number="4200000000000000", exp_month=1, exp_year=20301), "20301"),
    ],
    ids=["pan-dashes", "pan-int", "cvv-int", "cvv-letters", "month", "year"],
)
def test_a_rejected_card_value_is_never_echoed(build, secret):
    """A refused card number, CVV or expiry is named by its field, never shown in the message."""
    with pytest.raises(bga.InvalidRequest) as info:
        build()
    assert info.value.field.startswith("CreditCard.")
    assert secret not in str(info.value)
    assert "not shown" in str(info.value)


def test_an_expiry_written_as_text_is_taken_as_the_gateway_docs_show_it():
    """``"05"`` and ``"2030"`` (a CSV export, the gateway's own examples) are the month and year."""
    card = bga.CreditCard(number="4200000000000000", exp_month="05", exp_year="2030")
    assert (card.exp_month, card.exp_year) == (5, 2030)
    for month, year, field in (("5a", "2030", "exp_month"), ("05", "30", "exp_year")):
        with pytest.raises(bga.InvalidRequest) as refused:
            bga.CreditCard(number="4200000000000000", exp_month=month, exp_year=year)
        assert refused.value.field == f"CreditCard.{field}"
