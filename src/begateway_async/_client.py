"""`Gateway`: the client. It builds and wires the parts, and owns their life (``async with``).

The parts do the work, one concern each: `Submitter` (submits, re-sends), `Tracker`
(pending jobs, the poll loop), `Recovery` (resume, replay, reconcile), `Notifier`
(notifications), `Follower` (follow-ups); the README's "How it is built" maps them.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from ._clock import SchedulingClock, Timebase
from ._config import Limits, PollPolicy, Timeouts, check_arguments, validate_base_url
from ._events import EventHook
from ._follow import FOLLOW_POLICY, Follower
from ._http import HttpCore, gateway_headers
from ._jobs import AsCompleted, Job
from ._journal import Journal
from ._journals import open_journal
from ._lifecycle import Lifecycle
from ._models import Transaction
from ._notify import Notifier
from ._observe import Observer
from ._operations import Operations
from ._otel import Telemetry
from ._records import JournalEntry, JournalNotification
from ._recovery import Recovery
from ._requests import Request
from ._sealing import Sealer
from ._shared import SharedJournal
from ._sharing import Sharing
from ._submit import Submitter
from ._tracker import Tracker
from ._transports import HttpChoice, make_engine
from ._webhooks import Headers, Notification, WebhookVerifier

__all__ = ["FOLLOW_POLICY", "Gateway"]

T = TypeVar("T")
RecordT = TypeVar("RecordT", JournalEntry, JournalNotification)


class Gateway(Operations):
    """A client of one beGateway-platform card gateway, in asynchronous mode.

    Use it as an async context manager: entering opens the connection pool
    and starts the polling scheduler; leaving waits for every pending job by
    default (``drain=True``), or abandons them (their tokens still resume them).
    A Gateway opens once, like `httpx.AsyncClient`: after the block it
    refuses every call with `GatewayStateError`, before sending anything, and
    cannot be entered again (make a new one).

    Args:
        base_url: the gateway's base URL, e.g. `UNONAPAY` or `PAYCROSS`.
        shop_id: the shop id (HTTP Basic user name).
        secret_key: the shop's secret key (HTTP Basic password); it never
            appears in a repr, a log line or an exception.
        transport: an `httpx.AsyncBaseTransport` to send through (the simulator, respx).
        clock: epoch seconds now, by which the 24 h result expiry is judged
            (default `time.time`); a `SchedulingClock` such as
            `testing.VirtualClock` drives all of the client's timing.
        poll: when to poll (see `PollPolicy`).
        timeouts: per-request HTTP timeouts.
        limits: concurrency caps and the submit attempt bound.
        drain: whether leaving ``async with`` waits for pending jobs.
        rng: the source of backoff jitter (seed it for reproducible runs).
        allow_insecure_http: accept a plain ``http`` base URL on a non-loopback host.
        http: the HTTP engine without a ``transport``: ``"auto"`` (aiohttp on asyncio
            with the ``aiohttp`` extra, per job 0.4 x httpx's client CPU; else httpx),
            ``"httpx"`` or ``"aiohttp"``.
        journal: where submits are recorded (see `Journal`): a path opens an
            `SQLiteJournal` there (closed with the Gateway), a `Journal` is used
            as it is, None keeps a `MemoryJournal`. `resume_all` picks up
            what it holds unfinished.
        api_version: sent as ``X-API-Version`` on every request (``3`` asks for
            the flat v3 answers; both shapes parse). Requests that need a
            particular version (`BalanceQuery` needs 2) keep theirs.
        webhook_key: the shop's public key (PEM, or the bare base64 body the
            back office shows): notifications given to `deliver` must then
            carry a valid ``Content-Signature``.
        webhook_poll: how to poll jobs whose request names a ``notification_url``
            when notifications reach `deliver`: polls are then only the fallback
            for a notification that does not come (e.g. ``PollPolicy(first_delay=30,
            adaptive=False)``: about one request per job instead of four).
            None (the default) polls them like the others.
        on_take_over: on a shared journal (`PostgresJournal`), called with each
            job this worker takes over from another (a dead or closed worker's
            entry) once it is under way: nobody awaits it otherwise.
        on_event: called with each `Event` (`Submitted`, `Polled`, `Throttled`,
            `Notified`, `Ended`), synchronously; what it raises is logged and dropped.
        tracer_provider, meter_provider: OpenTelemetry providers for the job
            and request spans and the metrics (the ``otel`` extra); the global
            ones when None. Nothing is recorded without an SDK.
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
        on_take_over: Callable[[Job[Any]], object] | None = None,
        on_event: EventHook | None = None,
        tracer_provider: Any = None,
        meter_provider: Any = None,
    ) -> None:
        self.base_url = validate_base_url(base_url, allow_insecure_http=allow_insecure_http)
        check_arguments(
            shop_id=shop_id, secret_key=secret_key, poll=poll, webhook_poll=webhook_poll,
            timeouts=timeouts, limits=limits, transport=transport, http=http,
            api_version=api_version, clock=clock, on_event=on_event,
        )  # fmt: skip
        self.shop_id = str(shop_id)
        self.poll = poll or PollPolicy()
        self.webhook_poll = webhook_poll
        self.timeouts = timeouts or Timeouts()
        self.limits = limits or Limits()
        self.drain = drain
        self.api_version = api_version
        self.http: HttpChoice = http
        self.journal: Journal = open_journal(journal)
        #: Verifies notifications: HTTP Basic with this shop's credentials, and
        #: ``Content-Signature`` when ``webhook_key`` is given.
        self.webhooks = WebhookVerifier(self.shop_id, secret_key, public_key=webhook_key)
        self._owns_journal = not isinstance(journal, Journal) and journal is not None
        self._transport = transport
        self._on_take_over = on_take_over
        timebase = Timebase(clock)
        self._observer = Observer(timebase, on_event, Telemetry(tracer_provider, meter_provider))
        self._wire(secret_key, random.Random() if rng is None else rng, timebase)  # noqa: S311 - jitter

    def _wire(self, secret_key: str, rng: random.Random, timebase: Timebase) -> None:
        """Build the parts and connect them."""
        t, limits = self.timeouts, self.limits
        self._sealer = Sealer(secret_key, self.shop_id, self.base_url)
        given, engine = self._transport, self.http
        self._http = HttpCore(  # the engine is chosen in the running loop (aiohttp: asyncio)
            lambda: make_engine(engine, limits=limits, timeouts=t, transport=given),
            gateway_headers(self.shop_id, secret_key, self.api_version),
            limits.max_answer_bytes,
            self._observer,
        )
        self._timebase = timebase
        self._submitter = Submitter(
            base_url=self.base_url, shop_id=self.shop_id, http=self._http, journal=self.journal,
            timebase=timebase, policy=self.poll, rng=rng, limits=limits, sealer=self._sealer,
        )  # fmt: skip
        self._tracker = Tracker(
            base_url=self.base_url, timebase=timebase, http=self._http, submitter=self._submitter,
            poll=self.poll, webhook_poll=self.webhook_poll, rng=rng, cap=limits.polls_per_host,
        )  # fmt: skip
        self._recovery = Recovery(
            tracker=self._tracker, submitter=self._submitter, journal=self.journal,
            timebase=timebase, sealer=self._sealer,
        )  # fmt: skip
        self._sharing = (
            Sharing(self.journal, tracker=self._tracker, recovery=self._recovery,
                    submitter=self._submitter, on_take_over=self._on_take_over)
            if isinstance(self.journal, SharedJournal) else None
        )  # fmt: skip
        self._follower = Follower(self._tracker, timebase, rng)
        self._life = Lifecycle(
            timebase=timebase, http=self._http, tracker=self._tracker, sharing=self._sharing,
            journal=self.journal, owns_journal=self._owns_journal,
        )  # fmt: skip
        self._notifier = Notifier(
            tracker=self._tracker, submitter=self._submitter, journal=self.journal,
            sealer=self._sealer, verifier=self.webhooks, follower=self._follower,
            shop_id=self.shop_id, timebase=timebase,
        )  # fmt: skip

    def __repr__(self) -> str:
        pending = len(self._tracker.registry)
        return f"<Gateway {self.base_url} shop_id={self.shop_id!r} {self._life.state} {pending=}>"

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._life.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self._life.close(drain=self.drain, failed=exc is not None)
        return None

    async def open(self) -> Self:
        """Open without ``async with``, e.g. in an app's startup; `aclose` it from the same task.

        Not under a deadline (``anyio.fail_after``) that ends before `aclose`:
        the Gateway's loops run in a task group of the calling task, so that is
        refused (`GatewayStateError`); use ``async with`` there.
        """
        await self._life.open(explicit=True)
        return self

    async def aclose(self) -> None:
        """Close as leaving ``async with`` does (waiting for pending jobs when ``drain``).

        Closing again, or while another task closes it, waits for that close.
        """
        await self._life.close(drain=self.drain)

    def _check_open(self) -> None:
        self._life.check_open()

    @property
    def is_open(self) -> bool:
        """Whether the Gateway is inside ``async with`` (it submits and takes notifications)."""
        return self._life.state == "open"

    @property
    def pending(self) -> int:
        """How many jobs this Gateway is polling now."""
        return len(self._tracker.registry)

    # --- jobs ----------------------------------------------------------------------------

    async def submit(
        self, request: Request[T], *, idempotency_key: str | None = None, tag: str | None = None
    ) -> Job[T]:
        """Send a request in async mode and return its `Job` once the gateway acknowledged it.

        The body goes to ``/async`` + the operation's path with a ``RequestID``
        minted once per call, journalled before the first send. An unknown
        outcome (timeout, dropped connection, 5xx without a JSON error) is
        re-sent with the same key, at most ``limits.submit_attempts`` times.

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
            GatewayStateError: the Gateway is not open; nothing was sent.
            SubmitRejected: the gateway refused the request; no task exists.
            SubmitIndeterminate: no attempt told whether a task exists.
            UnsafeURL: the gateway answered with a result URL on another origin.
        """
        entry = self._submitter.entry(request, idempotency_key=idempotency_key, tag=tag)
        self._check_open()
        try:
            await self.journal.intent(entry)
            notified = getattr(request, "notification_url", None) is not None
            return await self._tracker.submit(entry, notified=notified)
        except BaseException as exc:  # no job: the submit's own end, once
            self._observer.unsent(entry, exc)
            raise

    def resume(self, token: str) -> Job[Any]:
        """Turn a `Job.token` (from this or another process) back into a polled job.

        Polling starts at once; a job this Gateway already polls is returned as it is.

        Raises:
            InvalidRequest: the token is malformed, or belongs to another gateway.
            UnsafeURL: the token's URLs are not on this gateway's origin.
            GatewayStateError: the Gateway is not open.
        """
        self._check_open()
        return self._recovery.resume(token)

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
        go on. Jobs already polled here are returned as they are; a submit
        being sent now is left to its sender. On a shared journal: this
        worker's unfinished entries, and those no live worker holds.

        Returns:
            The jobs, oldest first; `Job.tag` carries each submit's tag.
        """
        self._check_open()
        return await self._recovery.resume_all()

    def replay(self, entry: JournalEntry) -> Job[Any] | None:
        """The finished job a journalled end stands for; nothing is sent.

        For an entry of `Journal.entries` whose outcome holds the gateway's
        answer (a result, a one-shot error body, a refusal), its ``await``
        returns or raises what the original job did (the batch runner writes
        a killed run's answers from it).

        Returns:
            The job, or None for entries without an answer on record
            (unfinished, lost, expired, not sent): their ``outcome.error``
            and ``outcome.message`` say what happened to those that ended.
        """
        return self._recovery.replay(entry)

    def unseal(self, record: RecordT) -> RecordT:
        """A journal record (`JournalEntry` or `JournalNotification`) with its bodies in clear.

        Every body a journal keeps (a request's, an answer's, a notification's)
        is sealed with a key derived from this shop's credentials (see
        `Journal`): this opens them for reading. Nothing is sent.

        Raises:
            JournalError: they were sealed with other credentials.
        """
        return self._recovery.unseal(record)

    def as_completed(self, jobs: Iterable[Job[T]]) -> AsCompleted[T]:
        """The given jobs as they finish, in finishing order: ``async for job in ...``.

        Each yielded job is done (``await job`` returns or raises at once);
        jobs done already come first. A loop may stop early (see `AsCompleted`).
        """
        return AsCompleted(jobs)

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

        It matches the one pending job with its tracking id and an operation
        of its type, submitted before it was created, unless its uid ended
        another job; jobs sharing a tracking id are left to their polls.

        Args:
            body: the raw request body, exactly as received.
            headers: the request headers (a mapping, or ASGI's pairs).

        Returns:
            What was done with it.

        Raises:
            WebhookRejected: the notification did not verify; nothing was done.
            JournalError: it could not be recorded; do not answer 200.
            GatewayStateError: the Gateway is not open.
        """
        self._check_open()
        return await self._notifier.deliver(body, headers)

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
        time, at most a minute apart), not journalled and taking no submit
        slot; nothing is sent when a notification comes first.

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
        self._follower.check(transaction, within, poll)
        self._check_open()
        if transaction.status.final:
            return transaction
        return await self._follower.follow(transaction, within, poll or FOLLOW_POLICY)
