"""`Simulator`: an ASGI app that behaves like a beGateway-platform card gateway.

Documented behaviour first: HTTP Basic with shop id and secret, every
operation in sync mode and under ``/async``, the ``{"request": {...}}``
envelope, ``{message, errors}`` validation errors, the flat v3 shape on
``X-API-Version: 3``, the async task protocol (``processing``, then
``completed``; 200 results kept 24 hours from task creation; non-200 results
served once; then 404 ``unknown``), ``RequestID`` idempotency for 24 hours,
the 30 s duplicate check, the test cards, tracking-id and balance queries.

Tasks are not timers: each task knows when it is ready, and an answer is
decided when it is asked for, so a hundred thousand pending tasks cost only
their records. Time is the ``clock``'s: pass a `VirtualClock` to make 24
hours pass in a microsecond.

Control endpoints (no credentials): ``GET /_simulator/stats``,
``GET /_simulator/jobs`` (every task: operation, created, ready and served
times, requests), ``GET /_simulator/jobs/{request_id}``,
``POST /_simulator/3ds/{uid}`` (the customer passes 3-D Secure), and
``GET /_simulator/public_key`` (what verifies its notifications' signatures).

Notifications (webhooks): a transaction whose request has a
``notification_url`` is notified once it is final (when its task is ready,
or when 3-D Secure completes), signed and retried like the gateway does
(see `Notifier`), while `Simulator.notifying` runs. With
``three_d_secure_delay`` the customer passes 3-D Secure by themselves that
many seconds after the task is ready.
"""

from __future__ import annotations

import heapq
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio
import attrs
import httpx

from . import _routes as r
from ._books import Outcome, TxRecord
from ._control import control
from ._distributions import Distribution, LogNormal, pick
from ._faults import Faults
from ._ledger import Ledger
from ._notifier import Notifier, render_body
from ._pages import page
from ._stats import JobStats, Stats
from ._tasks import Tasks, ack

__all__ = [
    "DEMO_SHOPS",
    "ConnectionDropped",
    "JobStats",
    "Simulator",
    "Stats",
    "default_processing",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The public demo shops of the beGateway demo gateway (no secret of anyone's).
DEMO_SHOPS: Final[Mapping[str, str]] = {
    "361": "b8647b68898b084b836474ed8d61ffe117c9a01168d867f24953b776ddcb134d",
    "362": "9ad8ad735945919845b9a1996af72d886ab43d3375502256dbf8dd16bca59a4e",
}
SORRY: Final = {"message": "We're sorry, but something went wrong"}
_HTML_ERROR: Final = b"<html><body><h1>500 Internal Server Error</h1></body></html>"


class ConnectionDropped(Exception):  # noqa: N818 - names the simulated event
    """Raised by the app to drop the connection (see `SimulatorTransport`)."""


@attrs.frozen
class _Call:
    """One authenticated operation request."""

    shop: str
    route: tuple[str, ...]
    request: Any
    api_version: int
    base_url: str
    key: str | None


def default_processing(bank: Distribution) -> dict[str, Distribution | float]:
    """``bank`` for every operation, and no time at all for the queries."""
    return {"*": bank, "status_query": 0.0, "tracking_id_query": 0.0, "balance_query": 0.0}


class Simulator:
    """A simulated gateway, as an ASGI app.

    Args:
        shops: shop id → secret key accepted by HTTP Basic (the demo shops by default).
        clock: epoch seconds now; a `VirtualClock` also times slow and synchronous answers.
        processing: the processing time: one distribution (or seconds) for every
            operation, or a mapping by operation name with ``"*"`` for the rest.
            Operation names: ``payment``, ``authorization``, ``tokenization``,
            ``checkup``, ``capture``, ``void``, ``refund``, ``chargeback``,
            ``payout``, ``credit``, ``status_query``, ``tracking_id_query``,
            ``balance_query``.
        faults: the fault switches (all off by default); may be replaced at any time.
        seed: the seed of every random draw (processing times, fault rates).
        three_d_secure_delay: seconds after a 3-D Secure transaction's task is
            ready until the customer passes 3-D Secure (its card decides the
            final status); None waits for `complete_three_d_secure`.
    """

    def __init__(
        self,
        *,
        shops: Mapping[int | str, str] | None = None,
        clock: Callable[[], float] | None = None,
        processing: Distribution | float | Mapping[str, Distribution | float] | None = None,
        faults: Faults | None = None,
        seed: int = 0,
        three_d_secure_delay: float | None = None,
    ) -> None:
        self.shops = {str(k): v for k, v in (shops or DEMO_SHOPS).items()}
        self.clock: Callable[[], float] = clock or time.time
        self.processing: Distribution | float | Mapping[str, Distribution | float] = (
            processing if processing is not None else default_processing(LogNormal(1.0, 0.99))
        )
        self.faults = faults or Faults()
        self.rng = random.Random(seed)  # noqa: S311 - a simulation, not cryptography
        self.ledger = Ledger()
        self.stats = Stats()
        #: The async tasks, and the RequestID keys seen.
        self.tasks = Tasks(
            self.ledger,
            self.stats,
            self.clock,
            lambda endpoint: self.faults.too_early.fires(endpoint, self.rng),
        )
        self.three_d_secure_delay = three_d_secure_delay
        self._three_ds: list[tuple[float, str]] = []  # (when the customer is back, uid)
        #: The outbox of notifications; `notifier.attempts` lists every delivery attempt.
        self.notifier = Notifier(
            self.notification,
            self.shops,
            self.clock,
            random.Random(seed + 1),  # noqa: S311 - a simulation
        )

    def __repr__(self) -> str:
        return f"<Simulator shops={sorted(self.shops)} tasks={len(self.tasks)}>"

    # --- time ----------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        sleep = getattr(self.clock, "sleep", None)
        if sleep is not None:
            await sleep(seconds)
        else:
            await anyio.sleep(seconds)

    # --- notifications -------------------------------------------------------------------

    @asynccontextmanager
    async def notifying(
        self, transport: httpx.AsyncBaseTransport | None = None
    ) -> AsyncIterator[Notifier]:
        """Send notifications while the block runs (none are sent otherwise).

        Args:
            transport: where to send them (an `httpx.ASGITransport` of the
                shop's app, in process); by default over the network, to
                loopback URLs only.
        """
        self.notifier.transport = transport
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.notifier.run)
            try:
                yield self.notifier
            finally:
                tg.cancel_scope.cancel()

    @property
    def public_key(self) -> str:
        """The public key that verifies this simulator's ``Content-Signature`` (PEM)."""
        return self.notifier.public_key

    def notification(self, uid: str, base_url: str) -> tuple[str, bytes] | None:
        """The notification of ``uid`` now: its status and the classic transaction body."""
        self._catch_up(self.clock())
        record = self.ledger.transactions.get(uid)
        if record is None:
            return None
        body = self.ledger.render(Outcome(record=record), api_version=2, base_url=base_url)
        return record.status, render_body(body)

    def _notify_when_final(self, record: TxRecord, shop: str, base_url: str, ready: float) -> None:
        """Plan what happens to a new transaction: 3-D Secure, and its notification."""
        if record.status == "incomplete" and self.three_d_secure_delay is not None:
            heapq.heappush(self._three_ds, (ready + self.three_d_secure_delay, record.uid))
            ready += self.three_d_secure_delay
        elif record.status == "incomplete":
            return  # notified when `complete_three_d_secure` is called
        if record.notification_url:
            self.notifier.schedule(record.uid, shop, record.notification_url, base_url, ready)

    def _catch_up(self, now: float) -> None:
        """Customers who are back from 3-D Secure by ``now`` complete it."""
        while self._three_ds and self._three_ds[0][0] <= now:
            self.ledger.complete_three_d_secure(heapq.heappop(self._three_ds)[1])

    # --- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI request (HTTP; a lifespan runs `notifying` while the server runs)."""
        if scope["type"] == "lifespan":  # served for its lifetime: send notifications
            async with self.notifying():
                while True:
                    message = await receive()
                    if message["type"] == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    elif message["type"] == "lifespan.shutdown":
                        await send({"type": "lifespan.shutdown.complete"})
                        return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            status, answer_headers, content = await self._handle(scope, headers, body)
        except ConnectionDropped:
            # Start an answer and break off in its middle: a server closes
            # the connection, `SimulatorTransport` raises an httpx error.
            start = [(b"content-type", b"application/json"), (b"content-length", b"512")]
            await send({"type": "http.response.start", "status": 200, "headers": start})
            await send({"type": "http.response.body", "body": b'{"status":', "more_body": True})
            raise
        await self._respond(send, status, answer_headers, content)

    @staticmethod
    async def _respond(send: Send, status: int, headers: dict[str, str], content: bytes) -> None:
        raw = [(k.encode(), v.encode()) for k, v in headers.items()]
        raw.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": content})

    async def _handle(
        self, scope: Scope, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        path: str = scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?")[0]
        method: str = scope["method"]
        if path.startswith(r.CONTROL):
            status, data = control(self, method, path[len(r.CONTROL) :])
            return status, {"content-type": "application/json"}, json.dumps(data).encode()
        shown = page(self, method, path, body)
        if shown is not None:  # GET /, the 3-D Secure page
            return shown
        endpoint, route = r.route(method, path)
        self.stats.requests[endpoint] += 1
        status, answer_headers, content = await self._faulty(endpoint, route, scope, headers, body)
        self.stats.statuses[status] += 1
        return status, answer_headers, content

    async def _faulty(
        self,
        endpoint: str,
        route: tuple[str, ...],
        scope: Scope,
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        faults, rng = self.faults, self.rng
        if faults.slow.fires(endpoint, rng):
            await self._sleep(faults.slow.delay)
        if faults.drop.fires(endpoint, rng):
            raise ConnectionDropped(endpoint)
        for fault, status in ((faults.throttle, 429), (faults.unavailable, 503)):
            if fault.fires(endpoint, rng):
                retry = {"retry-after": f"{fault.retry_after:g}", "content-type": "text/plain"}
                return status, retry, b"Too Many Requests" if status == 429 else b"Unavailable"  # noqa: PLR2004
        if faults.html_error.fires(endpoint, rng):
            return 500, {"content-type": "text/html"}, _HTML_ERROR
        status, data = await self._dispatch(endpoint, route, scope, headers, body)
        content = data if isinstance(data, bytes) else json.dumps(data).encode()
        answer_headers = {"content-type": "application/json"}
        task = (
            self.tasks.get(data.get("request_id", ""))
            if endpoint == "submit" and isinstance(data, dict)
            else None
        )
        if task is not None:
            # For benchmarks: when the bank will be done (a client that knows
            # it is the floor no poller can beat). Real gateways send nothing like it.
            answer_headers["x-simulator-ready-at"] = repr(task.stats.ready_at)
        if faults.truncate.fires(endpoint, rng):
            content = content[: max(1, len(content) // 2)]
        return status, answer_headers, content

    # --- the gateway ---------------------------------------------------------------------

    def _authenticate(self, headers: Mapping[str, str]) -> str | None:
        credentials = r.parse_auth(headers.get("authorization"))
        if credentials is None:
            return None
        shop, secret = credentials
        expected = self.shops.get(shop)
        return shop if expected is not None and expected == secret else None

    async def _dispatch(
        self,
        endpoint: str,
        route: tuple[str, ...],
        scope: Scope,
        headers: Mapping[str, str],
        body: bytes,
    ) -> tuple[int, Any]:
        api_version = 3 if headers.get("x-api-version", "").strip() == "3" else 2
        self._catch_up(self.clock())
        if endpoint in ("status", "result"):
            return self.tasks.poll(endpoint, route[1], r.base_url(scope, headers))
        if not route:
            return 404, {"message": "Not found"}
        shop = self._authenticate(headers)
        if shop is None:
            unauthorized: dict[str, Any] = {"message": "Invalid shop_id/secret_key."}
            if api_version == 3:  # noqa: PLR2004
                unauthorized = {
                    "code": "E.1021",
                    "friendly_message": "Authorization error",
                    **unauthorized,
                }
            return 401, unauthorized
        request: Any = None
        if scope["method"] == "POST":
            try:
                envelope = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                return 400, self._error({"base": ["Invalid JSON"]}, "E.1026", api_version)
            request = envelope.get("request") if isinstance(envelope, dict) else None
        base_url = r.base_url(scope, headers)
        key = headers.get("requestid")
        call = _Call(shop, route, request, api_version, base_url, key)
        if endpoint == "submit":
            return self._submit(call)
        return await self._sync(call)

    def _error(self, errors: dict[str, Any], code: str, api_version: int) -> dict[str, Any]:
        outcome = Outcome(
            422,
            error={"message": ". ".join(errors.get("base", [])), "errors": errors, "_code": code},
        )
        return self.ledger.render(outcome, api_version=api_version, base_url="")

    def _outcome(self, shop: str, route: tuple[str, ...], request: Any, base_url: str) -> Outcome:
        kind, name = route
        if kind == "tracking_id_legacy":
            found = self.ledger.process(
                shop, "tracking_id", name, None, now=self.clock(), base_url=base_url
            )
            records = found.records or []
            if not records:
                return Outcome(404, error={"message": "Record not found", "_code": "E.1004"})
            return Outcome(record=records[0])
        outcome = self.ledger.process(
            shop, kind, name, request, now=self.clock(), base_url=base_url
        )
        if outcome.record is not None and kind == "transactions":
            self.stats.transactions += 1
        return outcome

    def _submit(self, call: _Call) -> tuple[int, Any]:
        shop, route, request, api_version, base_url, key = attrs.astuple(call, recurse=False)
        replayed = self.tasks.replayed(shop, key)
        task = self.tasks.get(replayed) if isinstance(replayed, str) else None
        if task is not None:
            task.stats.submits += 1
            return 200, ack(task.request_id, base_url)
        operation = r.operation_of(route)
        internal = self.faults.internal_error.fires("submit", self.rng)
        outcome = (
            Outcome(500, error=dict(SORRY))
            if internal
            else self._outcome(shop, route, request, base_url)
        )
        duration = pick(self.processing, operation).sample(self.rng, operation, request)
        task = self.tasks.create(
            shop=shop,
            operation=operation,
            outcome=outcome,
            api_version=api_version,
            duration=duration,
            internal_error=internal,
            key=key,
        )
        if outcome.record is not None and route[0] == "transactions":
            self._notify_when_final(outcome.record, shop, base_url, task.stats.ready_at)
        return 200, ack(task.request_id, base_url)

    async def _sync(self, call: _Call) -> tuple[int, Any]:
        shop, route, request, api_version, base_url, key = attrs.astuple(call, recurse=False)
        replayed = self.tasks.replayed(shop, key)
        if isinstance(replayed, tuple):
            return replayed
        operation = r.operation_of(route)
        started = self.clock()
        outcome = self._outcome(shop, route, request, base_url)
        await self._sleep(pick(self.processing, operation).sample(self.rng, operation, request))
        if outcome.record is not None and route[0] == "transactions":
            self._notify_when_final(outcome.record, shop, base_url, self.clock())
        body = json.dumps(self.ledger.render(outcome, api_version=api_version, base_url=base_url))
        answer = (outcome.status_code, body.encode())
        if key and route[0] in ("transactions", "balance"):
            self.tasks.remember(shop, key, started, answer)
        return answer

    def transaction(self, uid: str) -> TxRecord | None:
        """The books' record of transaction ``uid``, or None."""
        return self.ledger.transactions.get(uid)

    def complete_three_d_secure(self, uid: str, *, passed: bool = True) -> str | None:
        """The customer is back from 3-D Secure: give the transaction its final status (returned).

        ``passed``: the card's own final status; else it fails. Its
        notification, if it asked for one, is sent now.
        """
        pending = self.ledger.transactions.get(uid)
        redirect = pending.redirect_url if pending is not None else None
        record = self.ledger.complete_three_d_secure(uid, passed=passed)
        if record is None:
            return None
        if record.notification_url:
            base_url = (redirect or "").removesuffix(f"/process/{uid}")
            shop = self.ledger.owner.get(uid, "")
            self.notifier.schedule(uid, shop, record.notification_url, base_url, self.clock())
        return record.status
