"""The simulator's notifications (webhooks), sent like the gateway sends them.

A transaction whose request had a ``notification_url`` gets one POST of its
final state (``{"transaction": {...}}``, the classic shape), with HTTP Basic
(the shop id and secret key) and a ``Content-Signature``: the base64
RSA-SHA256 (PKCS#1 v1.5) signature of the exact body, made with the
simulator's own key pair (`Notifier.public_key` is what a shop configures).
An answer other than 2xx, or none, is retried on the card-transaction
service's documented schedule: retry ``n`` (1 to 15) comes
``int(2.12 * n) ** 3 + rand(30) * (n + 1)`` seconds after the previous
attempt (8-66 s, then 1-3 min, ... about 36 hours in all), on the
simulator's clock, so a `VirtualClock` runs the whole schedule at once.

Nothing is sent until `Notifier.run` runs (`Simulator.notifying`). Without a
``transport`` only loopback URLs are sent to; with one (an
`httpx.ASGITransport` of the shop's app, say) any URL goes to it.
"""

from __future__ import annotations

import base64
import functools
import heapq
import ipaddress
import itertools
import json
import logging
import math
import random
import urllib.parse
from collections.abc import Callable
from typing import Any, Final

import anyio
import attrs
import httpx

__all__ = ["Notifier", "WebhookAttempt", "retry_delay"]

logger = logging.getLogger("begateway_async.testing")

#: The card-transaction service retries a notification this many times.
RETRIES: Final = 15


def retry_delay(count: int, rng: random.Random) -> float:
    """Seconds before retry ``count`` (1-based), as the gateway's schedule has it."""
    return float(int(2.12 * count) ** 3 + rng.randrange(30) * (count + 1))


@functools.cache
def _key_pair() -> Any:
    """The simulator's RSA key (made once per process: 2048 bits take a moment)."""
    try:
        from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415 - optional
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            "the simulator signs notifications with cryptography: "
            "pip install 'begateway-async[simulator]'"
        ) from exc
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sign(body: bytes, private_key: Any = None) -> str:
    """The ``Content-Signature`` of ``body``: base64 RSA-SHA256, PKCS#1 v1.5."""
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - optional
    from cryptography.hazmat.primitives.asymmetric import padding  # noqa: PLC0415

    key = private_key if private_key is not None else _key_pair()
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@attrs.frozen
class WebhookAttempt:
    """One delivery attempt of a notification.

    Attributes:
        uid: the transaction's uid; status: the status it told.
        attempt: 0 for the first send, then the retry number.
        at: epoch seconds (the simulator's clock).
        answer: the HTTP status answered, or None (no answer, or not sent).
        error: why there was no answer.
    """

    uid: str
    status: str
    attempt: int
    at: float
    answer: int | None
    error: str | None = None


@attrs.define
class _Delivery:
    uid: str
    shop: str
    url: str
    base_url: str
    attempt: int = 0


class Notifier:
    """The outbox of one simulator: notifications due, sent by `run`.

    Args:
        render: uid and base URL → the notification body (None: no such transaction).
        shops: shop id → secret key, for HTTP Basic.
        clock: the simulator's clock (epoch seconds; a `VirtualClock` also times the waits).
        rng: the source of the schedule's jitter.
    """

    def __init__(
        self,
        render: Callable[[str, str], tuple[str, bytes] | None],
        shops: dict[str, str],
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self._render = render
        self._shops = shops
        self._clock = clock
        self._rng = rng
        self._outbox: list[tuple[float, int, _Delivery]] = []
        self._seq = itertools.count()
        self._kick = anyio.Event()
        self.attempts: list[WebhookAttempt] = []
        self._attempted: anyio.Event | None = None
        self.transport: httpx.AsyncBaseTransport | None = None
        self.timeout = 10.0
        #: Deliveries in flight at once (a gateway's sender is a bounded pool too;
        #: httpx's own pool slows down badly with hundreds of waiters).
        self.concurrency = 16

    @property
    def public_key(self) -> str:
        """The public key a shop configures to verify ``Content-Signature`` (PEM)."""
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - optional

        pem: bytes = (
            _key_pair()
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return pem.decode()

    async def wait_for(self, done: Callable[[list[WebhookAttempt]], bool]) -> list[WebhookAttempt]:
        """Return the attempts once ``done(attempts)`` holds (checked after each attempt).

        For tests that wait on what the simulator sent, not on the clock: e.g.
        ``await notifier.wait_for(lambda a: any(x.answer == 200 for x in a))``.
        """
        while not done(self.attempts):
            if self._attempted is None:
                self._attempted = anyio.Event()
            await self._attempted.wait()
        return self.attempts

    def _attempt(self, attempt: WebhookAttempt) -> None:
        self.attempts.append(attempt)
        woken, self._attempted = self._attempted, None
        if woken is not None:
            woken.set()

    @property
    def pending(self) -> int:
        """Notifications waiting to be sent (first sends and retries)."""
        return len(self._outbox)

    def schedule(self, uid: str, shop: str, url: str, base_url: str, at: float) -> None:
        """Send the notification of ``uid`` to ``url`` at epoch second ``at``."""
        self._push(at, _Delivery(uid, shop, url, base_url))

    def _push(self, at: float, delivery: _Delivery) -> None:
        heapq.heappush(self._outbox, (at, next(self._seq), delivery))
        self._kick.set()

    async def _wait(self, until: float) -> None:
        """Wait until epoch second ``until`` or a new notification, on the clock."""
        now = self._clock()
        wait = getattr(self._clock, "wait", None)
        monotonic = getattr(self._clock, "monotonic", None)
        if wait is not None and monotonic is not None:
            deadline = monotonic() + (until - now) if math.isfinite(until) else math.inf
            await wait(self._kick, deadline)
            return
        if math.isinf(until):
            await self._kick.wait()
            return
        with anyio.move_on_after(max(0.0, until - now)):
            await self._kick.wait()

    async def run(self) -> None:
        """Send notifications as they fall due, until cancelled."""
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        senders = anyio.CapacityLimiter(self.concurrency)
        async with (
            httpx.AsyncClient(
                transport=self.transport, timeout=self.timeout, limits=limits
            ) as client,
            anyio.create_task_group() as tg,
        ):
            while True:
                self._kick = anyio.Event()
                now = self._clock()
                while self._outbox and self._outbox[0][0] <= now:
                    delivery = heapq.heappop(self._outbox)[2]
                    tg.start_soon(self._send_bounded, senders, client, delivery)
                await self._wait(self._outbox[0][0] if self._outbox else math.inf)

    async def _send_bounded(
        self, senders: anyio.CapacityLimiter, client: httpx.AsyncClient, delivery: _Delivery
    ) -> None:
        async with senders:
            await self._send(client, delivery)

    async def _send(self, client: httpx.AsyncClient, delivery: _Delivery) -> None:
        rendered = self._render(delivery.uid, delivery.base_url)
        if rendered is None:
            return
        status, body = rendered
        at = self._clock()
        if self.transport is None and not _is_loopback(delivery.url):
            self._attempt(
                WebhookAttempt(delivery.uid, status, delivery.attempt, at, None, "not loopback")
            )
            return
        secret = self._shops.get(delivery.shop, "")
        credentials = base64.b64encode(f"{delivery.shop}:{secret}".encode()).decode()
        headers = {
            "authorization": f"Basic {credentials}",
            "content-type": "application/json",
            "content-signature": sign(body),
        }
        answer: int | None = None
        error: str | None = None
        try:
            response = await client.post(delivery.url, content=body, headers=headers)
            answer = response.status_code
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        self._attempt(WebhookAttempt(delivery.uid, status, delivery.attempt, at, answer, error))
        if answer is not None and 200 <= answer < 300:  # noqa: PLR2004
            return
        if delivery.attempt >= RETRIES:
            logger.info("notification of %s given up after %d retries", delivery.uid, RETRIES)
            return
        retry = delivery.attempt + 1
        delay = retry_delay(retry, self._rng)
        self._push(self._clock() + delay, attrs.evolve(delivery, attempt=retry))


def render_body(transaction: dict[str, Any]) -> bytes:
    """A notification body: the classic transaction answer, compact JSON."""
    return json.dumps(transaction, separators=(",", ":")).encode()
