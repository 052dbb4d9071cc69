"""Notifications: `WebhookVerifier` and `Notification` (see `begateway_async.webhooks`)."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ._errors import (
    InvalidRequest,
    MalformedResponse,
    WebhookMalformed,
    WebhookSignatureInvalid,
    WebhookUnauthorized,
)
from ._jobs import Job
from ._models import Transaction
from ._serde import decode_json, parse_transaction

__all__ = ["Headers", "Notification", "WebhookVerifier", "header"]

Headers = Mapping[str, str] | Iterable[tuple[bytes | str, bytes | str]]


def header(headers: Headers, name: str) -> str | None:
    """The value of header ``name`` (any case) in a mapping or in ASGI's list of pairs."""
    wanted = name.lower()
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        key_text = key.decode("latin-1") if isinstance(key, bytes) else key
        if key_text.lower() == wanted:
            return value.decode("latin-1") if isinstance(value, bytes) else value
    return None


def _load_public_key(key: str | bytes) -> Any:
    """An RSA public key from PEM, DER, or the bare base64 body the back office shows."""
    if isinstance(key, str):
        text = key.strip()
        if not text.startswith("-----BEGIN"):
            body = "".join(text.split())
            lines = [body[i : i + 64] for i in range(0, len(body), 64)]
            text = "\n".join(["-----BEGIN PUBLIC KEY-----", *lines, "-----END PUBLIC KEY-----"])
        data = text.encode()
    elif isinstance(key, bytes):
        data = key
    else:
        raise InvalidRequest("webhook_key", "must be the shop's public key as PEM, base64 or DER")
    try:
        loaded = (
            serialization.load_pem_public_key(data)
            if data.lstrip().startswith(b"-----")
            else serialization.load_der_public_key(data)
        )
    except ValueError:
        raise InvalidRequest("webhook_key", "is not a readable public key") from None
    if not isinstance(loaded, rsa.RSAPublicKey):
        raise InvalidRequest("webhook_key", "must be an RSA public key")
    return loaded


def _is_subscription(data: object) -> bool:
    """Whether a body is the notification of a subscription (``id``, ``state``, ``plan``)."""
    if not isinstance(data, Mapping) or "uid" in data:
        return False
    subscription_id = data.get("id")
    return ("state" in data and "plan" in data) or (
        isinstance(subscription_id, str) and subscription_id.startswith("sbs_")
    )


class WebhookVerifier:
    """Checks that a notification comes from the gateway, and reads its transaction.

    Args:
        shop_id: the shop id the gateway sends as the HTTP Basic user name.
        secret_key: the shop's secret key (the HTTP Basic password); never shown.
        public_key: the shop's public key from the back office (PEM, the bare
            base64 body, or DER); when given, ``Content-Signature`` is required.

    Raises:
        InvalidRequest: the key cannot be read, or ``cryptography`` is missing.
    """

    __slots__ = ("_expected", "_public_key", "shop_id")

    def __init__(
        self, shop_id: int | str, secret_key: str, *, public_key: str | bytes | None = None
    ) -> None:
        if not isinstance(secret_key, str) or not secret_key:
            raise InvalidRequest("secret_key", "must be a non-empty string")
        self.shop_id = str(shop_id)
        self._expected = f"{self.shop_id}:{secret_key}".encode()
        self._public_key = _load_public_key(public_key) if public_key is not None else None

    def __repr__(self) -> str:
        signed = "required" if self._public_key is not None else "not configured"
        return f"<WebhookVerifier shop_id={self.shop_id!r} signature {signed}>"

    @property
    def signature_required(self) -> bool:
        """Whether a ``Content-Signature`` is required (a public key is configured)."""
        return self._public_key is not None

    def authenticate(self, headers: Headers) -> None:
        """Check the HTTP Basic credentials (constant time).

        Raises:
            WebhookUnauthorized: they are missing or not the shop's.
        """
        value = header(headers, "authorization")
        if value is None:
            raise WebhookUnauthorized("no Authorization header")
        scheme, _, encoded = value.strip().partition(" ")
        if scheme.lower() != "basic":
            raise WebhookUnauthorized("the Authorization header is not HTTP Basic")
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookUnauthorized("the HTTP Basic credentials are not base64") from None
        if not hmac.compare_digest(given, self._expected):
            raise WebhookUnauthorized("wrong shop id or secret key")

    def check_signature(self, body: bytes, headers: Headers) -> None:
        """Check ``Content-Signature`` over the raw body, if a public key is configured.

        Raises:
            WebhookSignatureInvalid: the signature is missing, undecodable or wrong.
        """
        if self._public_key is None:
            return
        value = header(headers, "content-signature")
        if not value:
            raise WebhookSignatureInvalid("no Content-Signature header")
        try:
            signature = base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookSignatureInvalid("the Content-Signature is not base64") from None
        try:
            self._public_key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise WebhookSignatureInvalid(
                "the Content-Signature does not match the body and the shop's public key"
            ) from None

    def verify(self, body: bytes, headers: Headers) -> Transaction:
        """Authenticate a notification and read its transaction.

        Args:
            body: the request body exactly as received (never re-serialised).
            headers: the request headers: a mapping, or ASGI's ``(name, value)`` pairs.

        Raises:
            WebhookUnauthorized: wrong or missing credentials.
            WebhookSignatureInvalid: wrong or missing signature (public key configured).
            WebhookMalformed: the body is not a transaction.
        """
        if not isinstance(body, bytes | bytearray | memoryview):
            raise InvalidRequest("body", "must be the raw request body as bytes")
        body = bytes(body)
        self.authenticate(headers)
        self.check_signature(body, headers)
        try:
            decoded = decode_json(body)
        except ValueError:  # not JSON, not UTF-8, nested too deeply
            raise WebhookMalformed("not JSON", body=body.decode("utf-8", "replace")[:200]) from None
        if _is_subscription(decoded):
            # Its `transaction` summary is no transaction's notification: never mistake it
            # for the payment's (it has no tracking id of its own).
            raise WebhookMalformed(
                f"a subscription notification (id {decoded.get('id')!r}), not a "
                "transaction's: give subscriptions a notification URL of their own",
                body=decoded,
            )
        try:
            transaction = parse_transaction(decoded)
        except MalformedResponse as exc:
            raise WebhookMalformed(str(exc), body=decoded) from None
        if not transaction.uid:
            raise WebhookMalformed("the transaction has no uid", body=decoded)
        return transaction


@attrs.frozen
class Notification:
    """A verified notification, as `Gateway.deliver` handled it.

    Attributes:
        transaction: what the gateway says of the transaction.
        job: the pending job it matched (by tracking id and type), if any.
        resolved: whether this notification ended that job (False when a poll
            had already ended it, or was ending it at that moment).
        followed: how many `Gateway.follow` calls it woke with a final status.
        received_at: epoch seconds, by the Gateway's clock.
    """

    transaction: Transaction
    job: Job[Any] | None = attrs.field(default=None, repr=False)
    resolved: bool = False
    followed: int = 0
    received_at: float = 0.0
