"""`Gateway`: the client. It owns one HTTP connection pool and one polling scheduler."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import math
import os
import random
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import anyio.abc
import attrs
import httpx

from . import _protocol as p
from ._cadence import Cadence
from ._clock import SchedulingClock, Timebase
from ._config import (
    RESULT_RETENTION,
    Limits,
    PollPolicy,
    Timeouts,
    origin_of,
    validate_base_url,
)
from ._errors import (
    FollowUpTimeout,
    GatewayError,
    InvalidRequest,
    JobAbandoned,
    JobExpired,
    JobFailed,
    JobLost,
    MalformedResponse,
    RequestRejected,
    SubmitIndeterminate,
    TransportError,
    UnsafeURL,
)
from ._jobs import Job, JobState, read_token
from ._journal import (
    Journal,
    JournalEntry,
    JournalError,
    JournalNotification,
    JournalOutcome,
    open_journal,
)
from ._models import Transaction
from ._operations import Operations
from ._requests import Request, StatusQuery, TrackingIdQuery
from ._scheduler import Scheduler
from ._serde import parse_result, request_body
from ._transports import AnswerTooLarge, HttpChoice, HttpCore, choose_transport
from ._version import __version__
from ._webhooks import Headers, Notification, WebhookVerifier

__all__ = ["Gateway"]

logger = logging.getLogger("begateway_async")
T = TypeVar("T")

#: Errors of a request that never left this machine: the gateway saw nothing.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


#: Operations whose answer is not a transaction of their own: nothing to look up by tracking id.
_QUERIES = frozenset({"status_query", "tracking_id_query", "balance_query"})


def _types_of(operation: str) -> frozenset[str]:
    """The transaction types an operation's transaction may carry (payouts: also ``credit``)."""
    return frozenset({operation, "credit"}) if operation == "payout" else frozenset({operation})


def _makes_transactions(job: Job[Any]) -> bool:
    """Whether a tracking-id lookup can tell what became of ``job``."""
    return job.tracking_id is not None and job.operation not in _QUERIES


#: How `Gateway.follow` checks an incomplete transaction when no notification comes:
#: 5 s, then 1.5 times longer each time, at most a minute apart.
FOLLOW_POLICY = PollPolicy(first_delay=5.0, factor=1.5, max_delay=60.0, adaptive=False)

#: A notification's transaction created more than this before a job's submit
#: is not that job's (an earlier attempt with the same tracking id); allows
#: for the gateway's clock and ours disagreeing a little.
_CLOCK_SKEW = 5.0

#: How many uids of ended jobs a Gateway remembers: a notification of one of
#: them never ends another job.
_ENDED_UIDS = 16_384

#: How many final notifications a Gateway keeps for `Gateway.follow` calls
#: that start after theirs arrived.
_FINALS = 1_024


def _remember(memory: dict[str, T], key: str, value: T, limit: int) -> None:
    """Keep ``key`` in a bounded insertion-ordered dict (the oldest goes first)."""
    memory.pop(key, None)
    memory[key] = value
    if len(memory) > limit:
        del memory[next(iter(memory))]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _request_id_header(key: object) -> str:
    """Return the ``RequestID`` to send: ``key`` if valid, a fresh UUID for None."""
    if key is None:
        return str(uuid.uuid4())
    if not isinstance(key, str) or not 0 < len(key) <= 255:  # noqa: PLR2004
        raise InvalidRequest("idempotency_key", "must be a string of 1 to 255 characters")
    return key


class _Waiter:
    """One `Gateway.follow` call waiting for a final notification."""

    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.value: Transaction | None = None

    def __call__(self, transaction: Transaction) -> None:
        self.value = transaction
        self.event.set()

    def arrived(self) -> Transaction | None:
        """The final transaction, once a notification brought it."""
        return self.value


class Gateway(Operations):
    """A client of one beGateway-platform card gateway, in asynchronous mode.

    Use it as an async context manager: entering opens the connection pool
    and starts the polling scheduler; leaving waits for every pending job by
    default (``drain=True``), or abandons them (their tokens still resume them).

    Args:
        base_url: the gateway's base URL, e.g. `UNONAPAY` or `PAYCROSS`.
        shop_id: the shop id (HTTP Basic user name).
        secret_key: the shop's secret key (HTTP Basic password); it never
            appears in a repr, a log line or an exception.
        transport: an `httpx.AsyncBaseTransport` to send requests through
            (the simulator, respx, a faster transport); httpx's default otherwise.
        clock: epoch seconds now, by which the 24 h result expiry is judged
            (default `time.time`); a `SchedulingClock` such as
            `testing.VirtualClock` drives all of the client's timing.
        poll: when to poll (see `PollPolicy`).
        timeouts: per-request HTTP timeouts.
        limits: concurrency caps and the submit attempt bound.
        drain: whether leaving ``async with`` waits for pending jobs.
        rng: the source of backoff jitter (seed it for reproducible runs).
        allow_insecure_http: accept a plain ``http`` base URL on a non-loopback host.
        http: which HTTP engine sends the requests when no ``transport`` is
            given: ``"auto"`` (aiohttp on asyncio when the ``aiohttp`` extra is
            installed, about a tenth of httpx's CPU per request; httpx's own
            transport otherwise), ``"httpx"`` or ``"aiohttp"``.
        journal: where submits are recorded (see `Journal`): a path opens an
            `SQLiteJournal` there (closed with the Gateway), a `Journal` is used
            as it is, None keeps a `MemoryJournal`. `resume_all` picks up
            what it holds unfinished.
        api_version: sent as ``X-API-Version`` on every request (``3`` asks for
            the flat v3 answers; both shapes parse). Requests that need a
            particular version (`BalanceQuery` needs 2) keep theirs.
        webhook_key: the shop's public key (PEM, or the bare base64 body the
            back office shows): notifications given to `deliver` must then
            carry a valid ``Content-Signature``. Needs the ``webhooks`` extra.
        webhook_poll: how to poll jobs whose request names a ``notification_url``
            when notifications reach `deliver`: polls are then only the fallback
            for a notification that does not come (e.g. ``PollPolicy(first_delay=30,
            adaptive=False)``: about one request per job instead of four).
            None (the default) polls them like the others.
    """

    def __init__(
        self,
        base_url: str,
        shop_id: int | str,
        secret_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] | SchedulingClock | None = None,
        poll: PollPolicy | None = None,
        timeouts: Timeouts | None = None,
        limits: Limits | None = None,
        drain: bool = True,
        rng: random.Random | None = None,
        allow_insecure_http: bool = False,
        api_version: int | None = None,
        http: HttpChoice = "auto",
        journal: Journal | str | os.PathLike[str] | None = None,
        webhook_key: str | bytes | None = None,
        webhook_poll: PollPolicy | None = None,
    ) -> None:
        self.base_url = validate_base_url(base_url, allow_insecure_http=allow_insecure_http)
        if isinstance(shop_id, bool) or not isinstance(shop_id, int | str) or not str(shop_id):
            raise InvalidRequest("shop_id", "must be a non-empty integer or string")
        if not isinstance(secret_key, str) or not secret_key:
            raise InvalidRequest("secret_key", "must be a non-empty string")
        for name, value, cls in (
            ("poll", poll, PollPolicy),
            ("webhook_poll", webhook_poll, PollPolicy),
            ("timeouts", timeouts, Timeouts),
            ("limits", limits, Limits),
        ):
            if value is not None and not isinstance(value, cls):
                raise InvalidRequest(name, f"must be a {cls.__name__}")
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise InvalidRequest("transport", "must be an httpx.AsyncBaseTransport")
        if http not in ("auto", "httpx", "aiohttp"):
            raise InvalidRequest("http", f"must be 'auto', 'httpx' or 'aiohttp', not {http!r}")
        if api_version is not None and api_version not in (2, 3):
            raise InvalidRequest("api_version", f"must be 2, 3 or None, not {api_version!r}")
        if clock is not None and not callable(clock):
            raise InvalidRequest("clock", "must return epoch seconds when called")
        self.shop_id = str(shop_id)
        self.poll = poll or PollPolicy()
        self.webhook_poll = webhook_poll
        self.timeouts = timeouts or Timeouts()
        self.limits = limits or Limits()
        self.drain = drain
        self.api_version = api_version
        self.http: HttpChoice = http
        self.journal: Journal = open_journal(journal)
        self._owns_journal = not isinstance(journal, Journal) and journal is not None
        self._secret = secret_key
        self._transport = transport
        self._timebase = Timebase(clock)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._origin = origin_of(self.base_url)
        self._jobs: dict[str, Job[Any]] = {}
        self._idle = anyio.Event()
        self._http: HttpCore | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._submits = anyio.CapacityLimiter(self.limits.concurrent_submits)
        self._cadence = (
            Cadence(self.poll.lag_weight, running=self._running_for) if self.poll.adaptive else None
        )
        self._scheduler: Scheduler[Job[Any]] = Scheduler(
            self._timebase, self._poll, cap=self.limits.polls_per_host
        )
        #: Verifies notifications: HTTP Basic with this shop's credentials, and
        #: ``Content-Signature`` when ``webhook_key`` is given.
        self.webhooks = WebhookVerifier(self.shop_id, secret_key, public_key=webhook_key)
        # Pending jobs by tracking id, built on the first notification (no cost
        # to those who never get one), and the latest uids that ended jobs.
        self._by_tracking: dict[str, list[Job[Any]]] | None = None
        self._ended_uids: dict[str, None] = {}
        # Request ids whose answer (a poll's or a notification's) is being
        # journalled, each with the event set when that is over.
        self._claimed: dict[str, anyio.Event] = {}
        self._followers: dict[str, list[_Waiter]] = {}
        self._finals: dict[str, Transaction] = {}  # final notifications, by uid

    def __repr__(self) -> str:
        return f"<Gateway {self.base_url} shop_id={self.shop_id!r} pending={len(self._jobs)}>"

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._tg is not None:
            raise RuntimeError("this Gateway is already open")
        t = self.timeouts
        credentials = base64.b64encode(f"{self.shop_id}:{self._secret}".encode()).decode()
        headers = [
            (b"Accept", b"application/json"),
            (b"User-Agent", f"begateway-async/{__version__}".encode()),
            (b"Authorization", f"Basic {credentials}".encode()),
        ]
        if self.api_version is not None:
            headers.append((b"X-API-Version", str(self.api_version).encode()))
        limits = httpx.Limits(
            max_connections=self.limits.max_connections,
            max_keepalive_connections=self.limits.max_connections,
        )
        transport = (
            self._transport
            or choose_transport(self.http, limits)
            or httpx.AsyncHTTPTransport(limits=limits)
        )
        self._http = HttpCore(
            transport,
            headers,
            httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
            self.limits.max_answer_bytes,
        )
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        tg.start_soon(self._scheduler.run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None  # noqa: S101 - entered before exit
        try:
            if exc is None and self.drain and self._jobs:
                await self._idle.wait()
        finally:
            self._tg.cancel_scope.cancel()
            try:
                # The group holds only the scheduler: the caller's own
                # exception, if any, propagates as it is, not wrapped.
                await self._tg.__aexit__(None, None, None)
            finally:
                for job in list(self._jobs.values()):
                    job._resolve(  # noqa: SLF001
                        error=JobAbandoned(
                            "the Gateway closed before the job finished; resume it with its token",
                            request_id=job.request_id,
                            tracking_id=job.tracking_id,
                        )
                    )
                with anyio.CancelScope(shield=True):
                    if self._http is not None:
                        await self._http.aclose()
                    if self._owns_journal:
                        await self.journal.aclose()
        return None

    def _client(self) -> HttpCore:
        if self._http is None or self._tg is None:
            raise RuntimeError("use the Gateway as `async with Gateway(...) as gw:` first")
        return self._http

    @property
    def is_open(self) -> bool:
        """Whether the Gateway is inside ``async with`` (it submits and takes notifications)."""
        return self._tg is not None and self._http is not None

    @property
    def pending(self) -> int:
        """How many jobs this Gateway is polling now."""
        return len(self._jobs)

    # --- submitting ----------------------------------------------------------------------

    async def submit(
        self, request: Request[T], *, idempotency_key: str | None = None, tag: str | None = None
    ) -> Job[T]:
        """Send a request in async mode and return its `Job` once the gateway acknowledged it.

        The body goes to ``/async`` + the operation's path, wrapped in
        ``{"request": {...}}``, with a ``RequestID`` header minted once per
        call. When the outcome is unknown (timeout, dropped connection, 5xx
        without a JSON error) it is re-sent with the same ``RequestID``, at
        most ``limits.submit_attempts`` times in all: the gateway processes a
        key once.

        Args:
            request: any operation, e.g. `Payment` or `Refund`.
            idempotency_key: the ``RequestID`` to send; a fresh UUID by default.
                Pass an earlier one (from `SubmitIndeterminate`) within 24 hours
                to learn that submit's fate without doing it twice.
            tag: a label of yours for this submit, kept in the journal and on the
                job (`Job.tag`), e.g. an order number; `resume_all` returns it.

        Returns:
            The job; ``await job`` gives the result.

        Raises:
            InvalidRequest: ``request`` is not a request, or the key is malformed.
            RequestRejected: the gateway refused the request; no task exists.
            SubmitIndeterminate: no attempt told whether a task exists.
            UnsafeURL: the gateway answered with a result URL on another origin.
        """
        if not isinstance(request, Request):
            raise InvalidRequest("request", f"must be an operation, not {type(request).__name__}")
        if tag is not None and not isinstance(tag, str):
            raise InvalidRequest("tag", f"must be a string, not {type(tag).__name__}")
        idempotency_key = _request_id_header(idempotency_key)
        self._client()
        entry = JournalEntry(
            key=idempotency_key,
            gateway=self.base_url,
            shop_id=self.shop_id,
            operation=request.operation,
            method=request._method,  # noqa: SLF001
            path=sys.intern("/async" + request.path()),  # one string per endpoint, not per job
            body=request_body(request),
            headers=tuple(request._headers.items()),  # noqa: SLF001
            tracking_id=request.key,
            tag=tag,
            created_at=self._timebase.time(),
        )
        await self.journal.intent(entry)
        notified = getattr(request, "notification_url", None) is not None
        return await self._send_entry(entry, notified=notified)

    async def _send_entry(self, entry: JournalEntry, *, notified: bool = False) -> Job[Any]:
        """Send a journalled submit (first, or again after a restart); record what came of it."""
        client = self._client()
        headers = [(b"RequestID", entry.key.encode())]
        headers += [(name.encode(), value.encode()) for name, value in entry.headers]
        if entry.body is not None:
            headers.append((b"Content-Type", b"application/json"))
        url = httpx.URL(self.base_url + entry.path)
        attempts = self.limits.submit_attempts
        uncertain = False  # whether any attempt may have reached the gateway
        async with self._submits:
            for attempt in range(attempts):
                outcome, answer, reached = await self._send_submit(
                    client, entry.method, url, entry.body, headers
                )
                if not isinstance(outcome, p.Resend):
                    assert answer is not None  # noqa: S101 - a definite outcome had an answer
                    return await self._submitted(entry, outcome, answer, notified=notified)
                last = outcome
                uncertain |= reached
                logger.debug(
                    "submit attempt %d of %s: %s", attempt + 1, entry.operation, outcome.reason
                )
                if attempt + 1 < attempts:
                    delay = outcome.retry_after
                    if delay is None:
                        delay = self.poll.delay(attempt, self._rng)
                    await self._timebase.sleep(min(delay, self.poll.max_retry_after))
        if uncertain:
            # The entry stays unfinished: `resume_all` re-sends it with this key.
            raise SubmitIndeterminate(
                tracking_id=entry.tracking_id,
                idempotency_key=entry.key,
                attempts=attempts,
                last=last.reason,
            )
        # Every attempt was throttled, or none left this machine: no task exists.
        if answer is None:
            error: GatewayError = TransportError(
                f"cannot reach the gateway, nothing was sent: {last.reason}"
            )
            await self._record(entry.key, JournalOutcome("not_sent", message=str(error)))
            raise error
        await self._record(
            entry.key, JournalOutcome("rejected", answer.status_code, answer.content)
        )
        raise RequestRejected(
            status_code=answer.status_code, body=answer.text, tracking_id=entry.tracking_id
        )

    async def _record(self, key: str, outcome: JournalOutcome) -> None:
        """Write an outcome to the journal, stamped with the Gateway's clock."""
        await self.journal.finished(key, attrs.evolve(outcome, finished_at=self._timebase.time()))

    async def _send_submit(
        self,
        client: HttpCore,
        method: str,
        url: httpx.URL,
        body: bytes | None,
        headers: list[tuple[bytes, bytes]],
    ) -> tuple[p.SubmitOutcome, httpx.Response | None, bool]:
        """Send one submit attempt.

        Returns:
            The outcome, the answer if one came, and whether a task may have
            been created without our knowing (the request may have reached the
            gateway and was not answered definitely, nor only throttled).
        """
        try:
            answer = await client.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return p.Resend(_describe(exc)), None, not isinstance(exc, _NOT_SENT)
        outcome = p.decide_submit(
            answer.status_code, answer.headers, answer.content, now=self._timebase.time()
        )
        reached = isinstance(outcome, p.Resend) and not outcome.throttled
        return outcome, answer, reached

    async def _submitted(
        self,
        entry: JournalEntry,
        outcome: p.SubmitOutcome,
        answer: httpx.Response,
        *,
        notified: bool = False,
    ) -> Job[Any]:
        """Turn a definite answer to a submit into a job, or raise the refusal."""
        if isinstance(outcome, p.Ack):
            try:
                job = self._acknowledged(entry, outcome)
                job._notified = notified  # noqa: SLF001
            except UnsafeURL as exc:
                await self._record(
                    entry.key, JournalOutcome("error", error="UnsafeURL", message=str(exc))
                )
                raise
            if job.polling and job.request_id not in self._jobs:
                await self.journal.acknowledged(
                    entry.key, job.request_id, job.status_url, job.response_url
                )
                first_url = (
                    job.status_url
                    if self.poll.status_first and not outcome.completed
                    else job.response_url
                )
                self._track(job, first_url, 0.0 if outcome.completed else self._delay(job, None))
            return job
        if isinstance(outcome, p.Immediate):
            await self._record(
                entry.key, JournalOutcome("result", answer.status_code, answer.content)
            )
            return self._answered(entry, outcome)
        if isinstance(outcome, p.Rejected):
            await self._record(
                entry.key, JournalOutcome("rejected", outcome.status_code, answer.content)
            )
            raise RequestRejected(
                status_code=outcome.status_code, body=outcome.body, tracking_id=entry.tracking_id
            )
        raise AssertionError(outcome)  # pragma: no cover - Resend is handled by the caller

    def _task_url(
        self, url: str | None, request_id: str, tracking_id: str | None, kind: str
    ) -> str:
        if url is None:
            # The documented URL of the task, when the acknowledgement omits it.
            return f"{self.base_url}/async/{kind}/{request_id}"
        resolved = p.resolve_url(url, self.base_url)
        if resolved is None:
            raise UnsafeURL(
                url,
                expected_origin=self.base_url,
                request_id=request_id,
                tracking_id=tracking_id,
            )
        return resolved

    def _acknowledged(self, entry: JournalEntry, ack: p.Ack) -> Job[Any]:
        """The job of an acknowledged submit (the one already polled, for a repeated task)."""
        existing = self._jobs.get(ack.request_id)
        if existing is not None:  # the same RequestID answered twice: one job
            return existing
        tracking_id = entry.tracking_id
        response_url = self._task_url(ack.response_url, ack.request_id, tracking_id, "result")
        try:
            status_url = self._task_url(ack.status_url, ack.request_id, tracking_id, "status")
        except UnsafeURL:
            logger.warning("ignoring a status_url off the gateway origin; polling response_url")
            status_url = response_url
        return Job(
            self,
            request_id=ack.request_id,
            status_url=status_url,
            response_url=response_url,
            tracking_id=tracking_id,
            operation=entry.operation,
            created_at=entry.created_at,
            idempotency_key=entry.key,
            tag=entry.tag,
        )

    def _answered(self, entry: JournalEntry, answer: p.Immediate) -> Job[Any]:
        """A job for a POST that was answered with its result at once."""
        job = self._ended_later(entry)
        self._finish(job, p.Done(answer.body))
        return job

    def _track(self, job: Job[Any], url: str, delay: float) -> None:
        job._next_url = httpx.URL(url)  # noqa: SLF001
        if not self._jobs:
            self._idle = anyio.Event()
        self._jobs[job.request_id] = job
        if self._by_tracking is not None:
            self._index(job)
        self._scheduler.schedule(self._origin, self._timebase.monotonic() + delay, job)

    def _index(self, job: Job[Any]) -> None:
        """Add a pending job to the index by tracking id (once notifications come)."""
        assert self._by_tracking is not None  # noqa: S101 - built by the caller
        if job.tracking_id is not None:
            self._by_tracking.setdefault(job.tracking_id, []).append(job)

    def _forget(self, job: Job[Any]) -> None:
        if self._jobs.get(job.request_id) is job:
            del self._jobs[job.request_id]
            if not self._jobs:
                self._idle.set()
            if self._by_tracking is not None and job.tracking_id is not None:
                same = self._by_tracking.get(job.tracking_id)
                if same is not None and job in same:
                    same.remove(job)
                    if not same:
                        del self._by_tracking[job.tracking_id]

    # --- polling -------------------------------------------------------------------------

    async def _poll(self, job: Job[Any]) -> None:
        """One poll of one job; the scheduler calls it when the job is due."""
        if not job.polling:
            return
        job.polls += 1
        try:
            answer = await self._client().request("GET", job._next_url)  # noqa: SLF001
        except AnswerTooLarge as exc:
            job._resolve(  # noqa: SLF001
                error=MalformedResponse(str(exc), body=None, request_id=job.request_id)
            )
            await self._record_end(job)
            return
        except httpx.HTTPError as exc:
            outcome: p.PollOutcome = p.Transient(
                _describe(exc), maybe_consumed=not isinstance(exc, _NOT_SENT)
            )
        else:
            outcome = p.decide_poll(
                answer.status_code,
                answer.headers,
                answer.content,
                now=self._timebase.time(),
                created_at=job.created_at,
            )
            if isinstance(outcome, p.Done | p.Failed):
                if job.request_id in self._claimed or job.state is JobState.DONE:
                    # A notification ended the job (or is ending it) while this poll was out.
                    self._drop_late_answer(job, outcome)
                    return
                self._claimed[job.request_id] = anyio.Event()
                try:
                    outcome = await self._keep(job, outcome, answer)
                finally:
                    self._claimed.pop(job.request_id).set()
        try:
            self._finish(job, outcome)
        except Exception as exc:
            # Whatever the answer was, it ends this one job with a typed
            # error carrying the answer; every other job goes on.
            logger.exception("cannot process an answer for request_id=%s", job.request_id)
            body = getattr(outcome, "body", None)
            job._resolve(  # noqa: SLF001
                error=MalformedResponse(
                    f"cannot process the answer: {_describe(exc)}",
                    body=body,
                    request_id=job.request_id,
                )
            )
        if job.done() and not isinstance(outcome, p.Done | p.Failed):
            await self._record_end(job)

    async def _record_end(self, job: Job[Any]) -> None:
        """Journal a job that ended in an error other than a body (lost, expired, ...)."""
        error = job.exception()
        if error is None or isinstance(error, JobAbandoned):
            return  # abandoned jobs stay unfinished: `resume_all` picks them up
        key = job.idempotency_key or job.request_id
        try:
            await self._record(
                key, JournalOutcome("error", error=type(error).__name__, message=str(error))
            )
        except JournalError:
            logger.exception("request_id=%s: cannot journal how the job ended", job.request_id)

    async def _keep(
        self, job: Job[Any], outcome: p.Done | p.Failed, answer: httpx.Response
    ) -> p.PollOutcome:
        """Put a result or a one-shot error body in the journal before anyone sees it.

        If the journal cannot take it, a result is fetched again later (the
        gateway keeps it 24 hours); a one-shot error body, which cannot be,
        still reaches the waiters, and the failure is logged.
        """
        kind = "result" if isinstance(outcome, p.Done) else "failed"
        key = job.idempotency_key or job.request_id
        try:
            await self._record(key, JournalOutcome(kind, answer.status_code, answer.content))
        except JournalError as exc:
            if isinstance(outcome, p.Done):
                return p.Transient(f"the journal cannot take the result: {exc}")
            logger.error(  # noqa: TRY400 - the error is the journal's, described in full
                "request_id=%s: the one-shot error body is not journalled: %s", job.request_id, exc
            )
        return outcome

    def _finish(self, job: Job[Any], outcome: p.PollOutcome) -> None:  # noqa: C901, PLR0912
        """Apply a poll's outcome: resolve the job, or schedule its next poll."""
        if not job.polling:
            return
        request_id, tracking_id = job.request_id, job.tracking_id
        now = self._timebase.monotonic()
        delay: float | None = None
        self._learn(job, outcome)
        if isinstance(outcome, p.Done):
            try:
                value = parse_result(job._kind, outcome.body, request_id=job.request_id)  # noqa: SLF001
            except MalformedResponse as exc:
                job._resolve(error=exc)  # noqa: SLF001
            else:
                job._resolve(value)  # noqa: SLF001
                if job.tracking_id is not None and isinstance(value, Transaction) and value.uid:
                    _remember(self._ended_uids, value.uid, None, _ENDED_UIDS)
        elif isinstance(outcome, p.Failed):
            job._resolve(  # noqa: SLF001
                error=JobFailed(
                    status_code=outcome.status_code,
                    body=outcome.body,
                    request_id=request_id,
                    tracking_id=tracking_id,
                )
            )
        elif isinstance(outcome, p.Unknown):
            lost_reply = job._lost_reply and not outcome.expired  # noqa: SLF001
            if lost_reply and _makes_transactions(job) and self._tg is not None:
                # The lost reply may have carried a one-shot error body: find
                # out what the gateway holds before telling the waiters.
                self._tg.start_soon(self._settle_lost_reply, job)
                return
            job._resolve(error=self._unknown(job, expired=outcome.expired))  # noqa: SLF001
        elif isinstance(outcome, p.Refused):
            job._resolve(  # noqa: SLF001
                error=RequestRejected(
                    status_code=outcome.status_code, body=outcome.body, tracking_id=job.tracking_id
                )
            )
        elif isinstance(outcome, p.Completed):
            url = outcome.response_url or job.response_url
            resolved = p.resolve_url(url, self.base_url)
            if resolved is None:
                unsafe = UnsafeURL(
                    url,
                    expected_origin=self.base_url,
                    request_id=request_id,
                    tracking_id=tracking_id,
                )
                job._resolve(error=unsafe)  # noqa: SLF001
                return
            job._next_url = httpx.URL(resolved)  # noqa: SLF001
            delay = 0.0
        elif isinstance(outcome, p.Throttled):
            delay = self._delay(job, outcome.retry_after)
            self._scheduler.pause(self._origin, now + delay)
        elif isinstance(outcome, p.Transient):
            job.last_error = outcome.reason
            job._lost_reply |= outcome.maybe_consumed  # noqa: SLF001
            if self._timebase.time() >= job.created_at + RESULT_RETENTION:
                job._resolve(error=self._unknown(job, expired=True))  # noqa: SLF001
                return
            delay = self._delay(job, outcome.retry_after)
        else:  # Processing
            delay = self._delay(job, outcome.retry_after)
        if delay is not None and job.polling:
            self._scheduler.schedule(self._origin, now + delay, job)

    def _running_for(self, operation: str) -> list[float]:
        """How long each pending job of ``operation`` has been seen running (for the cadence)."""
        return [
            job._running_at  # noqa: SLF001
            for job in self._jobs.values()
            if job.operation == operation and job._running_at > 0  # noqa: SLF001
        ]

    def _learn(self, job: Job[Any], outcome: p.PollOutcome) -> None:
        """Tell the cadence what this answer says about the task's processing time."""
        if self._cadence is None:
            return
        elapsed = self._timebase.time() - job.created_at
        if isinstance(outcome, p.Processing):
            job._running_at = elapsed  # noqa: SLF001
        elif isinstance(outcome, p.Completed | p.Done | p.Failed) and job._running_at >= 0:  # noqa: SLF001
            self._cadence.observe(job.operation, job._running_at, elapsed)  # noqa: SLF001
            job._running_at = -1.0  # noqa: SLF001 - observed once

    def _delay(self, job: Job[Any], retry_after: float | None) -> float:
        """Seconds until the job's next poll: Retry-After, the learnt plan, or the backoff."""
        policy = self.poll
        if retry_after is not None:
            return min(retry_after, policy.max_retry_after)
        if job._notified and self.webhook_poll is not None:  # noqa: SLF001
            return self.webhook_poll.delay(job.polls, self._rng)  # notifications come first
        if self._cadence is not None:
            elapsed = self._timebase.time() - job.created_at
            offset = self._cadence.next_offset(job.operation, elapsed)
            if offset is not None and math.isfinite(offset):
                gap = min(max(offset - elapsed, self._cadence.min_gap), policy.max_delay)
                return gap * (1.0 + policy.jitter / 4 * (2.0 * self._rng.random() - 1.0))
        return policy.delay(job.polls, self._rng)

    async def _settle_lost_reply(self, job: Job[Any]) -> None:
        """End a job whose task is unknown after a lost reply, with what its tracking id shows."""
        found: tuple[Any, ...] | None = None
        try:
            assert job.tracking_id is not None  # noqa: S101 - checked by the caller
            query = await self.submit(TrackingIdQuery(tracking_id=job.tracking_id))
            found = tuple(tx for tx in await query if tx.type in _types_of(job.operation))
        except GatewayError as exc:
            logger.warning("request_id=%s: the tracking-id lookup failed: %s", job.request_id, exc)
        if found is None:
            what = "the tracking-id lookup failed too"
        elif found:
            what = f"the tracking-id query finds {len(found)} {job.operation} transaction(s)"
        else:
            what = "no transaction has its tracking_id: the task failed and its error body is gone"
        job._resolve(  # noqa: SLF001
            error=JobLost(
                f"the reply that may have carried the task's one-shot answer was lost; {what}",
                after_lost_reply=True,
                request_id=job.request_id,
                tracking_id=job.tracking_id,
                transactions=found,
            )
        )
        await self._record_end(job)

    @staticmethod
    def _unknown(job: Job[Any], *, expired: bool) -> GatewayError:
        if expired:
            return JobExpired(
                "the result is gone: 24 hours passed since the task's creation",
                request_id=job.request_id,
                tracking_id=job.tracking_id,
            )
        return JobLost(
            "the gateway does not know the task; reconcile by tracking_id",
            after_lost_reply=job._lost_reply,  # noqa: SLF001
            request_id=job.request_id,
            tracking_id=job.tracking_id,
        )

    # --- jobs ----------------------------------------------------------------------------

    def resume(self, token: str) -> Job[Any]:
        """Turn a `Job.token` (from this or another process) back into a polled job.

        Polling starts at once. A token of a job this Gateway already polls
        returns that job.

        Raises:
            InvalidRequest: the token is malformed, or belongs to another gateway.
            UnsafeURL: the token's URLs are not on this gateway's origin.
        """
        self._client()
        data = read_token(token)
        if origin_of(data["gateway"]) != self._origin:
            raise InvalidRequest("token.gateway", f"the job belongs to {data['gateway']!r}")
        existing = self._jobs.get(data["request_id"])
        if existing is not None:
            return existing
        request_id, tracking_id = data["request_id"], data.get("tracking_id")
        job: Job[Any] = Job(
            self,
            request_id=request_id,
            status_url=self._task_url(data["status_url"], request_id, tracking_id, "status"),
            response_url=self._task_url(data["response_url"], request_id, tracking_id, "result"),
            tracking_id=tracking_id,
            operation=data["operation"],
            created_at=float(data["created_at"]),
            idempotency_key=data.get("idempotency_key"),
        )
        job._running_at = -1.0  # noqa: SLF001 - its start was not seen here: teaches nothing
        first = job.status_url if self.poll.status_first else job.response_url
        self._track(job, first, 0.0)
        return job

    async def resume_all(self) -> list[Job[Any]]:
        """Pick up every unfinished submit of this gateway and shop in the journal.

        After a restart, with the same journal:

        - an acknowledged submit is polled again (it ends as `JobExpired` if
          24 hours have passed since its creation);
        - a submit sent without an acknowledgement on record is sent again
          with the **same** ``RequestID`` while the gateway keeps keys (24
          hours): the gateway answers with the task the first send created, or
          creates it now if the first never arrived. It is never sent with a
          new key;
        - past that window it is reconciled by its tracking id: the newest
          transaction of the operation's type with that tracking id is the
          result; none means the submit never created one (`JobLost`).

        A submit that fails again ends its own job with the error; the others
        go on. Jobs already polled here are returned as they are.

        Returns:
            The jobs, oldest first; `Job.tag` carries each submit's tag.
        """
        self._client()
        jobs: list[Job[Any]] = []
        now = self._timebase.time()
        for entry in await self.journal.unfinished(self.base_url, self.shop_id):
            if entry.request_id is not None:
                jobs.append(await self._resume_entry(entry))
            elif now < entry.created_at + RESULT_RETENTION:
                try:
                    jobs.append(await self._send_entry(entry))
                except GatewayError as exc:
                    jobs.append(self._ended(entry, exc))
            else:
                jobs.append(await self._reconcile(entry))
        return jobs

    async def _resume_entry(self, entry: JournalEntry) -> Job[Any]:
        """Poll an acknowledged submit again (or end it, when its result is gone)."""
        assert entry.request_id is not None  # noqa: S101 - acknowledged
        existing = self._jobs.get(entry.request_id)
        if existing is not None:
            return existing
        job = self._acknowledged(
            entry, p.Ack(entry.request_id, entry.status_url, entry.response_url)
        )
        job._running_at = -1.0  # noqa: SLF001 - its start was not seen here: teaches nothing
        if self._timebase.time() >= entry.created_at + RESULT_RETENTION:
            job._resolve(error=self._unknown(job, expired=True))  # noqa: SLF001
            await self._record_end(job)
            return job
        self._track(job, job.status_url if self.poll.status_first else job.response_url, 0.0)
        return job

    def _ended(
        self, entry: JournalEntry, error: BaseException | None = None, value: Any = None
    ) -> Job[Any]:
        """A job that is already over, with ``error`` or ``value``."""
        job = self._ended_later(entry)
        job._resolve(value, error)  # noqa: SLF001
        return job

    def _ended_later(self, entry: JournalEntry) -> Job[Any]:
        """A job for ``entry`` that is not polled; the caller resolves it."""
        return Job(
            self,
            request_id=entry.request_id or entry.key,
            status_url=entry.status_url or "",
            response_url=entry.response_url or "",
            tracking_id=entry.tracking_id,
            operation=entry.operation,
            created_at=entry.created_at,
            idempotency_key=entry.key,
            tag=entry.tag,
        )

    def _replay(self, entry: JournalEntry) -> Job[Any] | None:
        """The finished job a journalled result, one-shot error or refusal stands for.

        None for outcomes without a body to replay (lost, expired, not sent):
        the entry's ``outcome.error`` and ``outcome.message`` say what happened.
        """
        outcome = entry.outcome
        if outcome is None or outcome.body is None:
            return None
        job = self._ended_later(entry)
        job._running_at = -1.0  # noqa: SLF001 - an old answer teaches the cadence nothing
        if outcome.kind == "rejected":
            job._resolve(  # noqa: SLF001
                error=RequestRejected(
                    status_code=outcome.status_code or 0,
                    body=outcome.body.decode("utf-8", "replace"),
                    tracking_id=entry.tracking_id,
                )
            )
            return job
        decided = p.decide_poll(
            outcome.status_code or 200,
            {},
            outcome.body,
            now=self._timebase.time(),
            created_at=entry.created_at,
        )
        self._finish(job, decided if isinstance(decided, p.Done | p.Failed) else p.Done(None))
        return job

    async def _reconcile(self, entry: JournalEntry) -> Job[Any]:
        """Learn what became of a submit past the key window, by its tracking id."""
        if entry.operation in _QUERIES:
            error: GatewayError = JobLost(
                "a query unanswered for 24 hours: its answer is gone; send it again",
                after_lost_reply=False,
                request_id=entry.key,
                tracking_id=entry.tracking_id,
            )
        elif entry.tracking_id is None:
            error = JobLost(
                "the submit's fate is unknown and it has no tracking_id to look it up by",
                after_lost_reply=False,
                request_id=entry.key,
                tracking_id=None,
            )
        else:
            try:
                query = await self.submit(TrackingIdQuery(tracking_id=entry.tracking_id))
                found = [tx for tx in await query if tx.type in _types_of(entry.operation)]
            except GatewayError as exc:
                error = exc
            else:
                if found:
                    body = json.dumps({"transaction": dict(found[0].raw)}).encode()
                    await self._record(entry.key, JournalOutcome("result", 200, body))
                    return self._ended(entry, value=found[0])
                error = JobLost(
                    f"no {entry.operation} transaction has tracking_id {entry.tracking_id!r}: "
                    "the submit never created one",
                    after_lost_reply=False,
                    request_id=entry.key,
                    tracking_id=entry.tracking_id,
                )
        await self._record(
            entry.key, JournalOutcome("error", error=type(error).__name__, message=str(error))
        )
        return self._ended(entry, error)

    async def as_completed(self, jobs: Iterable[Job[T]]) -> AsyncIterator[Job[T]]:
        """Yield the given jobs as they finish, in finishing order.

        Each yielded job is done: ``await job`` returns its result or raises
        its error at once. Jobs already done come first.
        """
        pending = list(dict.fromkeys(jobs))
        send, receive = anyio.create_memory_object_stream[Job[T]](max_buffer_size=len(pending))
        for job in pending:
            job._add_done_callback(send.send_nowait)  # noqa: SLF001
        try:
            async with receive:
                for _ in range(len(pending)):
                    yield await receive.receive()
        finally:
            for job in pending:
                job._remove_done_callback(send.send_nowait)  # noqa: SLF001
            send.close()

    # --- notifications and follow-ups ----------------------------------------------------

    async def deliver(self, body: bytes, headers: Headers) -> Notification:
        """Take one notification (webhook) from the gateway: verify, record, resolve.

        In order: the notification is verified (`WebhookVerifier.verify`:
        HTTP Basic, and ``Content-Signature`` when ``webhook_key`` is set);
        recorded in the journal (`Journal.notified`); if it matches a pending
        job, that job's outcome is journalled and the job resolved with the
        notification's transaction at once: its scheduled polls are dropped
        and a poll in flight is ignored when it comes back. Whichever comes
        first, poll or notification, ends the job; the other changes nothing.
        Then `follow` calls waiting on the transaction's uid are woken if its
        status is final.

        A notification matches a job when exactly one pending job has the
        transaction's tracking id and an operation of its type, the
        transaction was not created before that job's submit, and its uid
        did not already end another job. When several jobs share a tracking
        id, none is resolved by the notification (their polls settle them):
        give every submit its own tracking id to have notifications end jobs.

        Args:
            body: the raw request body, exactly as received.
            headers: the request headers (a mapping, or ASGI's pairs).

        Returns:
            What was done with it.

        Raises:
            WebhookRejected: the notification did not verify; nothing was done.
            JournalError: it could not be recorded; do not answer 200.
        """
        self._client()
        transaction = self.webhooks.verify(body, headers)
        raw = bytes(body)
        uid = transaction.uid
        assert uid is not None  # noqa: S101 - the verifier requires one
        now = self._timebase.time()
        job = self._match(transaction)
        while job is not None and job.request_id in self._claimed:
            # Another answer for this job is being journalled: it ends the job,
            # unless the journal failed it (then this one may).
            await self._claimed[job.request_id].wait()
        owned = job is not None and job.polling
        key = None
        if job is not None and owned:
            self._claimed[job.request_id] = anyio.Event()
            key = job.idempotency_key or job.request_id
        try:
            await self.journal.notified(
                JournalNotification(
                    self.base_url,
                    self.shop_id,
                    uid,
                    transaction.tracking_id,
                    str(transaction.status),
                    raw,
                    now,
                    key=key,
                )
            )
            if key is not None:
                await self._record(key, JournalOutcome("result", 200, raw))
        finally:
            if key is not None and job is not None:
                self._claimed.pop(job.request_id).set()
        resolved = False
        if job is not None and owned and job.polling:
            self._finish(job, p.Done(transaction.raw))
            resolved = job.done()
            logger.debug("request_id=%s resolved by a notification", job.request_id)
        if resolved:
            _remember(self._ended_uids, uid, None, _ENDED_UIDS)
        followed = self._wake_followers(transaction)
        return Notification(transaction, job, resolved=resolved, followed=followed, received_at=now)

    def _match(self, transaction: Transaction) -> Job[Any] | None:
        """The one pending job ``transaction`` can only belong to, if there is one."""
        if self._by_tracking is None:
            self._by_tracking = {}
            for pending in self._jobs.values():
                self._index(pending)
        if transaction.tracking_id is None or transaction.uid in self._ended_uids:
            return None
        candidates = [
            job
            for job in self._by_tracking.get(transaction.tracking_id, ())
            if job.polling
            and job.operation not in _QUERIES
            and transaction.type in _types_of(job.operation)
        ]
        if len(candidates) != 1:
            if candidates:
                logger.info(
                    "a notification for tracking_id=%r matches %d pending jobs; their polls decide",
                    transaction.tracking_id,
                    len(candidates),
                )
            return None
        job = candidates[0]
        created = transaction.created_at
        if created is not None and created.tzinfo is None:
            created = created.replace(tzinfo=dt.UTC)  # the gateway's clock is UTC
        if created is not None and created.timestamp() < job.created_at - _CLOCK_SKEW:
            return None  # an earlier transaction with the same tracking id
        return job

    @staticmethod
    def _drop_late_answer(job: Job[Any], outcome: p.Done | p.Failed) -> None:
        """A poll's answer for a job a notification ended (or is ending): log what it said."""
        if isinstance(outcome, p.Failed):
            # A one-shot body for a job that a notification settled: keep it in the log.
            logger.warning(
                "request_id=%s: an error answer (HTTP %d) after a notification ended the job: %r",
                job.request_id,
                outcome.status_code,
                outcome.body,
            )
        else:
            logger.debug("request_id=%s: a result after a notification ended it", job.request_id)

    def _wake_followers(self, transaction: Transaction) -> int:
        """Hand a final transaction to the `follow` calls waiting on its uid."""
        uid = transaction.uid
        if uid is None or not transaction.status.final:
            return 0
        _remember(self._finals, uid, transaction, _FINALS)
        waiting = self._followers.pop(uid, [])
        for wake in waiting:
            wake(transaction)
        return len(waiting)

    async def follow(
        self,
        transaction: Transaction,
        *,
        within: float = 1800.0,
        poll: PollPolicy | None = None,
    ) -> Transaction:
        """Wait for an ``incomplete`` transaction (3-D Secure, say) to reach a final status.

        Whichever comes first: a notification of it given to `deliver` (or
        the `WebhookEndpoint`), or a status query. Queries go by uid
        (`StatusQuery`); a transaction without a uid is looked up by tracking
        id (the newest of its type), then by the uid learnt (a notification
        can wake only a follow that knew the uid). They run on ``poll``'s
        backoff (`FOLLOW_POLICY` by default: 5 s, then 1.5 times longer each
        time, at most a minute apart). Nothing is sent when a notification
        comes first.

        Args:
            transaction: the transaction to follow (a final one is returned as it is).
            within: seconds until giving up, on the Gateway's clock (30 min by default;
                the customer may simply never come back from 3-D Secure).
            poll: the schedule of status queries.

        Returns:
            The transaction in its final status: ``successful``, ``failed``, ...

        Raises:
            FollowUpTimeout: still not final by the deadline; carries the last state seen.
            InvalidRequest: neither a uid nor a tracking id to follow it by.
            GatewayError: a status query was refused (`RequestRejected`, `JobFailed`).
        """
        if not isinstance(transaction, Transaction):
            raise InvalidRequest("transaction", "must be a Transaction")
        if transaction.uid is None and transaction.tracking_id is None:
            raise InvalidRequest("transaction", "has neither a uid nor a tracking_id")
        if not (isinstance(within, int | float) and 0 < within < math.inf):
            raise InvalidRequest("within", "must be a positive number of seconds")
        if poll is not None and not isinstance(poll, PollPolicy):
            raise InvalidRequest("poll", "must be a PollPolicy")
        self._client()
        if transaction.status.final:
            return transaction
        return await self._follow(transaction, within, poll or FOLLOW_POLICY)

    async def _follow(
        self, transaction: Transaction, within: float, policy: PollPolicy
    ) -> Transaction:
        """`follow`'s waiting: a notification, or a status query on ``policy``'s schedule."""
        uid = transaction.uid
        waiter = _Waiter()
        if uid is not None:
            known = self._finals.get(uid)
            if known is not None:
                return known
            self._followers.setdefault(uid, []).append(waiter)
        try:
            return await self._until_final(transaction, waiter, within, policy)
        finally:
            waiting = self._followers.get(uid) if uid is not None else None
            if waiting is not None and waiter in waiting:
                waiting.remove(waiter)
                if not waiting:
                    del self._followers[uid]  # type: ignore[arg-type]

    async def _until_final(
        self, transaction: Transaction, waiter: _Waiter, within: float, policy: PollPolicy
    ) -> Transaction:
        timebase = self._timebase
        deadline = timebase.monotonic() + within
        last, checks = transaction, 0
        while True:
            gap = policy.delay(checks, self._rng)
            await timebase.wait(waiter.event, min(deadline, timebase.monotonic() + gap))
            if (final := waiter.arrived()) is not None:
                return final
            if timebase.monotonic() >= deadline:
                raise FollowUpTimeout(
                    f"the transaction is still {last.status} after {within:g} s", transaction=last
                )
            waiter.event = anyio.Event()  # the clock may have set the old one on time-out
            checks += 1
            seen = await self._look_up(last)
            if (final := waiter.arrived()) is not None:  # it came while the query was out
                return final
            if seen is not None:
                last = seen
                if seen.status.final:
                    return seen

    async def _look_up(self, transaction: Transaction) -> Transaction | None:
        """The transaction's current state by uid (or tracking id); None when not learnt now."""
        try:
            if transaction.uid is not None:
                job = await self.submit(StatusQuery(uid=transaction.uid))
                found: Transaction | None = await job
            else:
                assert transaction.tracking_id is not None  # noqa: S101 - checked by follow
                query = await self.submit(TrackingIdQuery(tracking_id=transaction.tracking_id))
                same = [tx for tx in await query if tx.type == transaction.type]
                found = same[0] if same else None
        except (SubmitIndeterminate, TransportError, MalformedResponse, JobLost, JobExpired) as exc:
            logger.info("a status query of an incomplete transaction failed: %s", exc)
            return None
        return found
