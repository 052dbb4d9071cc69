"""Reading answers into models: both shapes, tolerance, and errors that keep the body."""

from __future__ import annotations

import datetime as dt

import pytest

import begateway_async as bga
from begateway_async._serde import parse_result, parse_transaction
from fakes import transaction

V3 = {
    "uid": "b7a9-1",
    "status": "successful",
    "type": "payment",
    "code": "S.0000",
    "friendly_message": "The payment is successful.",
    "message": "Successfully processed",
    "amount": 3245,
    "currency": "EUR",
    "tracking_id": "order-7",
    "created_at": "2026-03-01T10:00:00+03:00",
    "payment_method": {"type": "credit_card", "last_4": "0000", "brand": "visa", "token": "tok"},
    "transaction": {"status": "successful", "rrn": 123456789, "auth_code": "654321"},
    "links": {"receipt_url": "https://merchant.example/receipt/1"},
    "gateway_specific": {"x": 1},
}


def test_classic_shape():
    """The classic {"transaction": {...}} answer: fields, card, bank details under the type key."""
    tx = parse_transaction(transaction())
    assert tx.uid == "u1"
    assert tx.status == bga.TransactionStatus.SUCCESSFUL
    assert tx.successful
    assert not tx.failed
    assert tx.amount == 100
    assert tx.created_at == dt.datetime(2026, 1, 1, 0, 0, 1, 123000, tzinfo=dt.UTC)
    assert tx.card is not None
    assert tx.card.last_4 == "0000"
    assert tx.card.token == "tok_1"
    assert tx.bank is not None
    assert tx.bank.rrn == "123456789"
    assert tx.bank.gateway_id == 645
    assert tx.raw == transaction()


def test_v3_flat_shape():
    """The flat X-API-Version: 3 answer: payment_method, inner transaction, links."""
    tx = parse_transaction(V3)
    assert tx.uid == "b7a9-1"
    assert tx.code == "S.0000"
    assert tx.card is not None
    assert tx.card.brand == "visa"
    assert tx.bank is not None
    assert tx.bank.rrn == "123456789"
    assert tx.receipt_url == "https://merchant.example/receipt/1"
    assert tx.created_at is not None
    assert tx.created_at.utcoffset() == dt.timedelta(hours=3)
    assert tx.raw["gateway_specific"] == {"x": 1}


def test_unknown_fields_are_kept_in_raw():
    """Fields the models do not name are never an error, and stay in raw."""
    body = transaction(new_field={"nested": [1, 2]}, parent_transaction={"uid": "p"})
    tx = parse_transaction(body)
    assert tx.raw["transaction"]["new_field"] == {"nested": [1, 2]}


def test_unseen_status_is_tolerated():
    """A status this version has not seen is kept, and known only to be unknown."""
    tx = parse_transaction(transaction(status="on_hold"))
    assert tx.status == "on_hold"
    assert not tx.status.known
    assert bga.TransactionStatus("failed").known


def test_declined_payment_is_a_transaction():
    """A declined payment is a Transaction with status failed, not an error."""
    tx = parse_transaction(transaction(status="failed", message="Payment was declined"))
    assert tx.failed
    assert tx.message == "Payment was declined"


def test_incomplete_payment_has_redirect():
    """A 3-D Secure payment is incomplete, with the redirect URL and the 3-DS section."""
    body = transaction(
        status="incomplete",
        redirect_url="https://gw.test/process/u1",
        three_d_secure_verification={
            "status": "incomplete",
            "ve_status": "Y",
            "acs_url": "https://acs",
        },
    )
    tx = parse_transaction(body)
    assert tx.incomplete
    assert not tx.status.final
    assert tx.redirect_url == "https://gw.test/process/u1"
    assert tx.three_d_secure is not None
    assert tx.three_d_secure.ve_status == "Y"


def test_unreadable_date_does_not_fail_the_result():
    """A timestamp in an unexpected format reads None; the string stays in raw."""
    tx = parse_transaction(transaction(paid_at="yesterday"))
    assert tx.paid_at is None
    assert tx.raw["transaction"]["paid_at"] == "yesterday"


@pytest.mark.parametrize("amount", [10.99, "ten", True, [1]])
def test_money_is_never_truncated(amount):
    """A fractional or non-numeric amount is MalformedResponse with the body, never rounded."""
    body = transaction(amount=amount)
    with pytest.raises(bga.MalformedResponse) as info:
        parse_transaction(body, request_id="r9")
    assert "amount" in str(info.value)
    assert info.value.body == body
    assert info.value.request_id == "r9"


@pytest.mark.parametrize("body", [[], "x", {"transaction": {"uid": "u1"}}, {"foo": 1}])
def test_not_a_transaction(body):
    """An answer with no transaction status is a MalformedResponse with the whole body."""
    with pytest.raises(bga.MalformedResponse) as info:
        parse_transaction(body)
    assert info.value.body == body


def test_tracking_id_list():
    """The tracking-id query answers a list of transactions (flat items), newest first."""
    body = {
        "transactions": [
            dict(transaction("u2")["transaction"]),
            dict(transaction("u1")["transaction"]),
        ]
    }
    txs = parse_result("transactions", body)
    assert [tx.uid for tx in txs] == ["u2", "u1"]
    assert txs[0].bank is not None
    assert txs[0].bank.rrn == "123456789"
    assert parse_result("transactions", {"transactions": []}) == []


def test_balance():
    """The balance answer (camelCase, v2) and the v3 bank_info name both read."""
    body = {
        "status": "successful",
        "result": {
            "gatewayId": 5,
            "account": "40701810842020395221",
            "amount": 6623871674,
            "currency": "RUB",
            "bankInfo": {"Account": "x", "Amount": 66238716.74},
        },
    }
    balance = parse_result("balance", body)
    assert balance == bga.Balance(
        status="successful",
        gateway_id=5,
        account="40701810842020395221",
        amount=6623871674,
        currency="RUB",
        bank_info={"Account": "x", "Amount": 66238716.74},
    )
    v3 = parse_result("balance", {"status": "successful", "result": {"amount": 1, "bank_info": {}}})
    assert v3.bank_info == {}


def test_card_token_hidden_in_repr():
    """A card token (it charges the card again) is not shown by repr."""
    assert "tok_1" not in repr(parse_transaction(transaction()))


def test_the_fields_a_merchant_reads():
    """id, payment_method_type, the dates, additional data, beProtected and AVS/CVC are modelled."""
    body = transaction(
        id="u1",
        payment_method_type="credit_card",
        expired_at="2026-01-02T00:00:00Z",
        closed_at="2026-01-01T00:10:00Z",
        settled_at=None,
        additional_data={"contract": ["recurring"]},
        be_protected_verification={
            "status": "failed",
            "message": "Blacklisted e-mail",
            "white_black_list": {"email": "black", "ip": "absent", "card_number": "absent"},
            "rules": {"shop": {"max amount": {"Transaction amount > 100": "passed"}}},
            "limit": {"volume": {"daily": "passed"}},
        },
        avs_cvc_verification={
            "avs_verification": {"result_code": "Y"},
            "cvc_verification": {"result_code": "M"},
        },
    )
    tx = parse_transaction(body)
    assert tx.id == "u1"
    assert tx.payment_method_type == "credit_card"
    assert tx.expired_at == dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    assert tx.closed_at == dt.datetime(2026, 1, 1, 0, 10, tzinfo=dt.UTC)
    assert tx.settled_at is None
    assert tx.additional_data == {"contract": ["recurring"]}
    assert tx.be_protected == bga.BeProtected(
        status="failed",
        message="Blacklisted e-mail",
        white_black_list={"email": "black", "ip": "absent", "card_number": "absent"},
        rules={"shop": {"max amount": {"Transaction amount > 100": "passed"}}},
        limit={"volume": {"daily": "passed"}},
    )
    assert tx.avs_cvc == bga.AvsCvc(avs_result_code="Y", cvc_result_code="M")


def test_v3_payment_method_type_and_checks():
    """v3 keeps payment_method_type in payment_method; its AVS/CVC section reads the same."""
    body = {
        **V3,
        "payment_method": {"payment_method_type": "credit_card", "last_4": "0000"},
        "avs_cvc_verification": {"avs_verification": {"result_code": None}},
    }
    tx = parse_transaction(body)
    assert tx.payment_method_type == "credit_card"
    assert tx.avs_cvc == bga.AvsCvc(avs_result_code=None, cvc_result_code=None)


def test_the_bank_section_without_a_type():
    """A classic body without `type` still gives its bank section (its one type section)."""
    body = transaction()
    del body["transaction"]["type"]
    tx = parse_transaction(body)
    assert tx.type is None
    assert tx.bank is not None
    assert tx.bank.auth_code == "654321"


def test_our_section_names_are_not_taken_from_the_answer():
    """A top-level key named like one of our sections (bank, card, ...) is ignored, kept in raw."""
    tx = parse_transaction(transaction(bank="not a section", be_protected=7, avs_cvc=[1]))
    assert tx.bank is not None  # from the `payment` section
    assert tx.be_protected is None
    assert tx.avs_cvc is None
    assert tx.raw["transaction"]["bank"] == "not a section"


def test_a_bad_item_of_a_list_keeps_the_whole_answer():
    """A tracking-id answer with one unreadable item: MalformedResponse with the whole body."""
    body = {"transactions": [transaction()["transaction"], None]}
    with pytest.raises(bga.MalformedResponse, match=r"transactions\[1\]") as info:
        parse_result("transactions", body)
    assert info.value.body is body


@pytest.mark.parametrize(
    "odd",
    [
        {"additional_data": []},
        {"be_protected_verification": {"status": 5, "limit": [], "rules": "x"}},
        {"avs_cvc_verification": {"avs_verification": {"result_code": {"a": 1}}}},
        {"id": {"x": 1}, "payment_method_type": 7},
        {"customer": [], "billing_address": "nowhere"},
    ],
    ids=["additional-data", "be-protected", "avs-cvc", "strings", "sections"],
)
def test_an_odd_section_never_fails_a_successful_payment(odd):
    """A section of the wrong type reads None (raw keeps it); the payment is still successful."""
    tx = parse_transaction(transaction(**odd))
    assert tx.successful
    assert tx.raw["transaction"].keys() >= odd.keys()
