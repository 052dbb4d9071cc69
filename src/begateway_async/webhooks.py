"""Notifications (webhooks) from the gateway: verify them, parse them, serve them.

The gateway POSTs the final state of a transaction to the request's
``notification_url``, with the same body as the transaction answer
(``{"transaction": {...}}``). Before anything believes it:

1. **HTTP Basic**: the ``Authorization`` header must carry the shop id and
   secret key (compared in constant time). Always required.
2. **Content-Signature**: when the shop's public key is configured
   (``Gateway(..., webhook_key=...)``), the header must hold a base64
   RSA-SHA256 (PKCS#1 v1.5) signature of the exact raw body. Required then,
   not merely checked when present: a forged request simply leaves it out.
3. The body must be a transaction (a uid and a status), either shape. A
   subscription's notification (``id``, ``state``, ``plan``, with a summary of
   its last transaction inside) is refused as `WebhookMalformed`: it is not a
   transaction's, and must never end a payment's job. Subscriptions (another
   API) need a notification URL of their own.

`WebhookVerifier` does that much and nothing else. `Gateway.deliver` does it
and then acts: it records the notification in the journal, resolves the
matching pending job at once, and wakes `Gateway.follow`. `WebhookEndpoint`
is `Gateway.deliver` as an ASGI app, mounted in one line::

    app = Starlette(routes=[Route("/begateway/notify", WebhookEndpoint(gateway), methods=["POST"])])

It answers 200 only once the notification is verified and on record (and
``on_notification``, if given, returned): anything else makes the gateway
send it again later (up to 15 retries over about 36 hours), which is what
covers a crash, a full disk or a bug in the handler.
"""

from ._endpoint import WebhookEndpoint
from ._errors import (
    WebhookMalformed,
    WebhookRejected,
    WebhookSignatureInvalid,
    WebhookUnauthorized,
)
from ._webhooks import Notification, WebhookVerifier

__all__ = [
    "Notification",
    "WebhookEndpoint",
    "WebhookMalformed",
    "WebhookRejected",
    "WebhookSignatureInvalid",
    "WebhookUnauthorized",
    "WebhookVerifier",
]
