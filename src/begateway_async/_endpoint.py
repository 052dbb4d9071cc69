"""`WebhookEndpoint`: the gateway's notifications as an ASGI app, for one `Gateway`."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, Protocol

from ._config import Limits
from ._errors import (
    InvalidRequest,
    WebhookMalformed,
    WebhookRejected,
    WebhookSignatureInvalid,
    WebhookUnauthorized,
)
from ._webhooks import Headers, Notification

__all__ = ["Deliverer", "WebhookEndpoint"]

logger = logging.getLogger("begateway_async.webhooks")


class Deliverer(Protocol):
    """What the endpoint needs of a `Gateway`."""

    @property
    def is_open(self) -> bool:
        """Whether it takes notifications now."""
        ...

    @property
    def limits(self) -> Limits:
        """Its limits: ``max_answer_bytes`` caps a notification's body too."""
        ...

    async def deliver(self, body: bytes, headers: Headers) -> Notification:
        """Verify, record and act on one notification."""
        ...


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class WebhookEndpoint:
    """An ASGI app that takes the gateway's notifications for one `Gateway`.

    ``POST`` only. Answers:

    - **200** once the notification is verified, recorded in the Gateway's
      journal, matched to its job (resolving it) and ``on_notification``
      returned;
    - **401** wrong or missing credentials, **403** wrong or missing signature,
      **400** a body that is not a transaction, **413** a body over
      ``limits.max_answer_bytes``: nothing is recorded or resolved;
    - **503** the Gateway is not open or its journal failed, **500**
      ``on_notification`` raised: the gateway sends it again later, so the
      handler must be idempotent (key it by ``transaction.uid``).

    Args:
        gateway: the open `Gateway` whose jobs the notifications resolve
            (open it in the app's lifespan).
        on_notification: ``async def f(notification)``, called with every
            verified `Notification` before the 200, e.g. to mark an order paid.
    """

    def __init__(
        self,
        gateway: Deliverer,
        *,
        on_notification: Callable[[Notification], Awaitable[object]] | None = None,
    ) -> None:
        if not callable(getattr(gateway, "deliver", None)):
            raise InvalidRequest("gateway", "must be a Gateway")
        if on_notification is not None and not callable(on_notification):
            raise InvalidRequest("on_notification", "must be an async function or None")
        self.gateway = gateway
        self.on_notification = on_notification
        self._warned = False

    def __repr__(self) -> str:
        return f"<WebhookEndpoint for {self.gateway!r}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI request."""
        if scope["type"] == "lifespan":  # mounted as the whole app: nothing to start
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"{message['type']}.complete"})
                if kind == "shutdown":
                    return
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            await _answer(send, 405, {"error": "POST only"}, [(b"allow", b"POST")])
            return
        limit = self.gateway.limits.max_answer_bytes
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await _answer(send, 413, {"error": f"the body is over {limit} bytes"})
                return
            if not message.get("more_body"):
                break
        status, answer = await self._handle(bytes(body), scope["headers"])
        await _answer(send, status, answer)

    async def _handle(self, body: bytes, headers: Headers) -> tuple[int, dict[str, Any]]:
        if not self.gateway.is_open:
            if not self._warned:  # once: the gateway retries, and would flood the log
                self._warned = True
                logger.warning(
                    "a notification came while the Gateway is not open: answered 503, the "
                    "gateway will send it again; keep the Gateway open for the life of the app "
                    "(`async with gateway:` in the app's lifespan)"
                )
            return 503, {"error": "not ready"}
        try:
            notification = await self.gateway.deliver(body, headers)
        except WebhookRejected as exc:
            logger.warning("notification refused: %s", exc)
            return _REFUSALS.get(type(exc), (400, {"error": "refused"}))
        except Exception:
            logger.exception("cannot record a notification; the gateway will send it again")
            return 503, {"error": "cannot record it now"}
        if self.on_notification is not None:
            try:
                await self.on_notification(notification)
            except Exception:
                logger.exception(
                    "on_notification failed for uid=%s; the gateway will send it again",
                    notification.transaction.uid,
                )
                return 500, {"error": "the handler failed"}
        return 200, {"status": "ok"}


#: The answer to each kind of refused notification.
_REFUSALS: Final[dict[type[WebhookRejected], tuple[int, dict[str, Any]]]] = {
    WebhookUnauthorized: (401, {"error": "unauthorized"}),
    WebhookSignatureInvalid: (403, {"error": "bad signature"}),
    WebhookMalformed: (400, {"error": "not a transaction"}),
}


async def _answer(
    send: Send, status: int, data: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    content = json.dumps(data).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        *(extra or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
