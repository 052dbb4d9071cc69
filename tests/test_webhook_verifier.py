"""Verifying notifications: HTTP Basic, Content-Signature over the raw body, the body itself."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

import begateway_async as bga
from begateway_async.webhooks import WebhookVerifier
from fakes import SECRET, SHOP_ID, transaction

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = (
    KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
BODY = json.dumps(transaction("u-77", tracking_id="order-77")).encode()


def basic(user: object = SHOP_ID, password: str = SECRET) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def signature(body: bytes, key: Any = KEY) -> str:
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


def headers(body: bytes = BODY, **overrides: str | None) -> dict[str, str]:
    found = {"Authorization": basic(), "Content-Signature": signature(body)}
    found.update(overrides)  # type: ignore[arg-type]
    return {k: v for k, v in found.items() if v is not None}


def test_a_signed_notification_verifies_and_parses():
    verifier = WebhookVerifier(SHOP_ID, SECRET, public_key=PEM)
    tx = verifier.verify(BODY, headers())
    assert (tx.uid, tx.status, tx.tracking_id, tx.type) == (
        "u-77",
        "successful",
        "order-77",
        "payment",
    )
    assert verifier.signature_required


def test_headers_are_found_in_any_case_and_as_asgi_pairs():
    verifier = WebhookVerifier(SHOP_ID, SECRET, public_key=PEM)
    pairs = [(k.lower().encode(), v.encode()) for k, v in headers().items()]
    assert verifier.verify(BODY, pairs).uid == "u-77"
    upper = {k.upper(): v for k, v in headers().items()}
    assert verifier.verify(BODY, upper).uid == "u-77"


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "no Authorization header"),
        (basic(password="wrong"), "wrong shop id or secret key"),
        (basic(user=362), "wrong shop id or secret key"),
        ("Bearer abc", "not HTTP Basic"),
        ("Basic %%%", "not base64"),
    ],
)
def test_wrong_or_missing_credentials_are_refused(authorization: str | None, reason: str):
    verifier = WebhookVerifier(SHOP_ID, SECRET)
    with pytest.raises(bga.WebhookUnauthorized, match=reason) as caught:
        verifier.verify(BODY, headers(Authorization=authorization))
    assert SECRET not in str(caught.value)


def test_without_a_public_key_basic_alone_suffices():
    verifier = WebhookVerifier(SHOP_ID, SECRET)
    assert not verifier.signature_required
    assert verifier.verify(BODY, {"authorization": basic()}).uid == "u-77"


def test_a_tampered_body_fails_the_signature():
    verifier = WebhookVerifier(SHOP_ID, SECRET, public_key=PEM)
    tampered = BODY.replace(b"successful", b"failed_____")
    with pytest.raises(bga.WebhookSignatureInvalid, match="does not match"):
        verifier.verify(tampered, headers(BODY))


def test_a_body_re_serialised_fails_the_signature():
    """The signature is over the raw bytes: the same JSON spaced differently does not verify."""
    verifier = WebhookVerifier(SHOP_ID, SECRET, public_key=PEM)
    respaced = json.dumps(json.loads(BODY), indent=1).encode()
    with pytest.raises(bga.WebhookSignatureInvalid):
        verifier.verify(respaced, headers(BODY))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "no Content-Signature"),
        ("", "no Content-Signature"),
        ("not base64!", "not base64"),
        (signature(BODY, OTHER_KEY), "does not match"),
    ],
)
def test_a_missing_foreign_or_garbled_signature_is_refused(value: str | None, reason: str):
    verifier = WebhookVerifier(SHOP_ID, SECRET, public_key=PEM)
    with pytest.raises(bga.WebhookSignatureInvalid, match=reason):
        verifier.verify(BODY, headers(**{"Content-Signature": value}))


def test_credentials_are_checked_before_the_signature():
    verifier = WebhookVerifier(SHOP_ID, SECRET, public_key=PEM)
    with pytest.raises(bga.WebhookUnauthorized):
        verifier.verify(
            BODY, headers(Authorization=basic(password="x"), **{"Content-Signature": "x"})
        )


def test_the_key_reads_as_pem_bare_base64_or_der():
    der = KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bare = "".join(line for line in PEM.splitlines() if not line.startswith("-----"))
    for key in (PEM, PEM.encode(), bare, der):
        assert WebhookVerifier(SHOP_ID, SECRET, public_key=key).verify(BODY, headers()).uid


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("not a key", "not a readable public key"),
        (b"\x00\x01", "not a readable public key"),
        (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode(),
            "must be an RSA public key",
        ),
        (42, "PEM, base64 or DER"),
    ],
)
def test_an_unreadable_key_is_refused_naming_the_field(key: Any, reason: str):
    with pytest.raises(bga.InvalidRequest, match=reason) as caught:
        WebhookVerifier(SHOP_ID, SECRET, public_key=key)
    assert caught.value.field == "webhook_key"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>", "not JSON"),
        (b'{"transaction": {"uid": "u1"}}', "no transaction status"),
        (b'{"transaction": {"status": "successful"}}', "no uid"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"transaction": {"uid": "u1", "status": "successful", "amount": "lots"}}', "amount"),
    ],
)
def test_an_authentic_body_that_is_no_transaction_is_malformed(body: bytes, reason: str):
    verifier = WebhookVerifier(SHOP_ID, SECRET, public_key=PEM)
    with pytest.raises(bga.WebhookMalformed, match=reason):
        verifier.verify(body, headers(body))


def test_the_body_must_be_bytes():
    with pytest.raises(bga.InvalidRequest, match="raw request body"):
        WebhookVerifier(SHOP_ID, SECRET).verify(BODY.decode(), headers())  # type: ignore[arg-type]


def test_the_secret_is_in_no_repr():
    verifier = WebhookVerifier(SHOP_ID, SECRET, public_key=PEM)
    assert SECRET not in repr(verifier)
    assert "signature required" in repr(verifier)
    gateway = bga.Gateway("https://gw.test", SHOP_ID, SECRET, webhook_key=PEM)
    assert SECRET not in repr(gateway.webhooks)


def test_the_endpoint_checks_its_arguments():
    with pytest.raises(bga.InvalidRequest, match="must be a Gateway") as caught:
        bga.WebhookEndpoint(object())  # type: ignore[arg-type]
    assert caught.value.field == "gateway"
    gateway = bga.Gateway("https://gw.test", SHOP_ID, SECRET)
    with pytest.raises(bga.InvalidRequest, match="on_notification"):
        bga.WebhookEndpoint(gateway, on_notification="mark paid")  # type: ignore[arg-type]
    assert SECRET not in repr(bga.WebhookEndpoint(gateway))


SUBSCRIPTION = {
    "id": "sbs_1f2e3d",
    "state": "active",
    "tracking_id": "plan-buyer-9",
    "plan": {"title": "Monthly", "plan": {"amount": 990, "currency": "USD"}},
    "card": {"last_4": "0000", "brand": "visa"},
    "transaction": {"uid": "t-5", "status": "successful", "message": "ok"},
    "event": "renewed.subscription",
}


@pytest.mark.parametrize(
    "body",
    [SUBSCRIPTION, {**SUBSCRIPTION, "plan": None, "state": None}],
    ids=["full", "by-id"],
)
def test_a_subscription_notification_is_never_taken_for_a_transaction(body):
    """A verified subscription notification is refused, naming what it is; no transaction."""
    raw = json.dumps(body).encode()
    verifier = WebhookVerifier(SHOP_ID, SECRET, public_key=PEM)
    with pytest.raises(bga.WebhookMalformed, match="a subscription notification") as info:
        verifier.verify(raw, headers(raw))
    assert info.value.body["id"] == "sbs_1f2e3d"


def test_a_notification_too_deep_to_read_is_malformed():
    """A body nested 100 000 deep is WebhookMalformed, not a RecursionError."""
    raw = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(bga.WebhookMalformed, match="not JSON"):
        WebhookVerifier(SHOP_ID, SECRET).verify(raw, headers(raw))


@pytest.mark.anyio
async def test_a_notification_to_a_gateway_that_is_not_open_warns_once_naming_the_fix(caplog):
    """503 (the gateway sends it again), and one warning that says to keep the Gateway open."""
    gateway = bga.Gateway("https://gw.test", SHOP_ID, SECRET)
    endpoint = bga.WebhookEndpoint(gateway)
    transport = httpx.ASGITransport(app=endpoint)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        with caplog.at_level(logging.WARNING, logger="begateway_async"):
            answers = [(await client.post("/notify", content=b"{}")).status_code for _ in range(3)]
    assert answers == [503, 503, 503]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "async with gateway:" in warnings[0]
    assert "lifespan" in warnings[0]
