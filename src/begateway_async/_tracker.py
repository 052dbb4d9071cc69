"""The jobs a Gateway polls: starting them, the poll loop, and carrying out each poll's step.

A pending job is a `Tracked` record in the registry (by request id) and an
entry in the scheduler's heap; nothing else. Each poll's answer is decided
by `_protocol.decide_poll`, its step by `_steps.decide_step`; this module
only carries the step out: end the job (journalling how), poll it again
(pausing the host when throttled), or look it up by tracking id.
"""

from __future__ import annotations

import logging
import random
from typing import Any, TypeVar

import anyio
import anyio.abc
import httpx

from . import _protocol as p
from . import _steps as s
from ._clock import Timebase
from ._config import PollPolicy, origin_of
from ._errors import GatewayError, JobAbandoned, MalformedResponse
from ._http import AnswerTooLarge, HttpCore, describe, not_sent
from ._jobs import Job
from ._models import Transaction
from ._pacing import NOT_SEEN, Pacing
from ._records import JournalEntry, JournalError, JournalOutcome, error_outcome
from ._registry import Registry, Tracked
from ._requests import Request, TrackingIdQuery
from ._scheduler import Scheduler
from ._shared import LeaseLost
from ._submit import Sent, Standing, Submitter

__all__ = ["Tracker"]

logger = logging.getLogger("begateway_async.jobs")
T = TypeVar("T")


class Tracker:
    """Starts jobs from the gateway's answers and polls them until they end.

    Args:
        base_url: the gateway's base URL.
        timebase: the Gateway's time.
        http: the Gateway's HTTP core (the polls go through it).
        submitter: sends the library's own queries (tracking-id lookups).
        poll: when to poll; webhook_poll: when to poll jobs expecting a notification.
        rng: the source of jitter.
        cap: polls in flight per host.
    """

    def __init__(
        self,
        *,
        base_url: str,
        timebase: Timebase,
        http: HttpCore,
        submitter: Submitter,
        poll: PollPolicy,
        webhook_poll: PollPolicy | None,
        rng: random.Random,
        cap: int,
    ) -> None:
        self.base_url = base_url
        self.registry = Registry()
        #: Told of each job's end, host pause and own query (the HTTP core's).
        self.observer = http.observer
        self._on_end = self._ended  # one bound method for every job, not one each
        self._closed = False
        self._origin = origin_of(base_url)
        self._timebase = timebase
        self._http = http
        self._submitter = submitter
        self._status_first = poll.status_first
        self._pacing = Pacing(poll, webhook_poll, rng, running=self.registry.running_for)
        self._scheduler: Scheduler[Tracked] = Scheduler(timebase, self._poll, cap=cap)
        self._tg: anyio.abc.TaskGroup | None = None
        #: Keys of the journalled submits being sent now (their jobs are not tracked yet).
        self.sending: set[str] = set()

    async def run(self) -> None:
        """Poll until cancelled (the Gateway runs this inside ``async with``)."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                await self._scheduler.run()
            finally:
                self._tg = None

    # --- starting jobs ---------------------------------------------------------------------

    def job(
        self,
        entry: JournalEntry,
        ack: p.Ack | None = None,
        *,
        key_known: bool = True,
        quiet: bool = False,
    ) -> Job[Any]:
        """A new job for ``entry`` (not polled): its task's URLs from ``ack``, if it has one.

        ``key_known`` False: the ``RequestID`` the task was submitted with is
        not known (a token that does not carry it); ``entry.key`` is then only
        the journal's key for it. ``quiet``: its end is not reported (a replay).
        """
        return Job(
            gateway=self.base_url,
            timebase=self._timebase,
            request_id=ack.request_id if ack is not None else entry.request_id or entry.key,
            status_url=(ack.status_url if ack is not None else entry.status_url) or "",
            response_url=(ack.response_url if ack is not None else entry.response_url) or "",
            tracking_id=entry.tracking_id,
            operation=entry.operation,
            created_at=entry.created_at,
            idempotency_key=entry.key if key_known else None,
            tag=entry.tag,
            on_end=self.registry.forget if quiet else self._on_end,
        )

    def _ended(self, job: Job[Any]) -> None:
        self.registry.forget(job)
        self.observer.ended(job)

    def ended(
        self,
        entry: JournalEntry,
        value: Any = None,
        error: BaseException | None = None,
        *,
        quiet: bool = False,
    ) -> Job[Any]:
        """A job for ``entry`` that is already over, with ``error`` or ``value``."""
        job = self.job(entry, quiet=quiet)
        self._resolve(job, value, error)
        return job

    def answered(
        self, entry: JournalEntry, outcome: p.Done | p.Failed, *, quiet: bool = False
    ) -> Job[Any]:
        """A job for ``entry`` whose answer is known already: ended with what it says."""
        job = self.job(entry, quiet=quiet)
        step = s.decide_step(
            job, outcome, lost_reply=False, now=self._timebase.time(), base_url=self.base_url
        )
        assert isinstance(step, s.End)  # noqa: S101 - a result or an error body ends a job
        self._resolve(job, step.value, step.error)
        return job

    def start(
        self,
        entry: JournalEntry,
        sent: Sent,
        *,
        notified: bool = False,
        internal: bool = False,
        resumed: bool = False,
        key_known: bool = True,
    ) -> Job[Any]:
        """The job of a definite answer to ``entry``: polled until it ends, or over already.

        Args:
            entry: the submit.
            sent: the gateway's answer (`Submitter.send`): an acknowledgement
                with absolute URLs, or the result itself.
            notified: the request names a ``notification_url``.
            internal: a query of the library's own: its end is not journalled.
            resumed: picked up again (after a restart, or from a token): polled at
                once, teaching the cadence nothing (its start was not seen here),
                and known to have been polled perhaps: a ``404 unknown`` is then
                settled by a tracking-id lookup and reported as a lost reply.
            key_known: see `job`.
        """
        if isinstance(sent, p.Immediate):
            return self.answered(entry, p.Done(sent.body))
        existing = self.registry.get(sent.request_id)
        if existing is not None:  # the same RequestID answered twice: one job
            self.observer.merged(entry, existing.job)
            return existing.job
        job = self.job(entry, sent, key_known=key_known)
        if self._closed:  # answered while the Gateway closed: the journal and the token keep it
            job.set_exception(s.abandoned(job))
            return job
        polled_first = (
            job.status_url if self._status_first and not sent.completed else job.response_url
        )
        tracked = Tracked(
            job,
            polled_first,
            notified=notified,
            running_at=NOT_SEEN if resumed else 0.0,
            journal_key=None if internal else entry.key,
            started=None if resumed else self._timebase.time(),
        )
        # Picked up again, it may have been polled by a process that died
        # before journalling the answer: that answer may be gone (one-shot).
        tracked.lost_reply = resumed
        now = self._timebase.monotonic()
        delay, hold = 0.0, None
        if not (sent.completed or resumed):
            delay, hold = self._pacing.first(tracked, self._pacing.after(tracked, 0.0, None))
        tracked.hold = None if hold is None else now + hold
        self.registry.add(tracked)
        self._scheduler.schedule(self._origin, now + delay, tracked)
        return job

    async def submit(self, entry: JournalEntry, *, notified: bool = False) -> Job[Any]:
        """Send a journalled entry and start its job (see `Submitter.send` for the errors).

        On a shared journal, an end another worker recorded first (a
        notification delivered there) is the job's.
        """
        self.sending.add(entry.key)
        try:
            sent = await self._submitter.send(entry)
        except Standing as standing:
            job = self.job(entry)
            outcome = s.recorded_answer(standing.outcome, now=self._timebase.time(), job=job)
            if outcome is not None:
                return self.answered(entry, outcome)
            error = s.ended_elsewhere(job, standing.outcome.error, standing.outcome.message)
            return self.ended(entry, error=error)
        finally:
            self.sending.discard(entry.key)
        return self.start(entry, sent, notified=notified)

    async def query(self, request: Request[T]) -> T:
        """The result of a query the library makes for itself: no journal, no submit slot."""
        entry = self._submitter.entry(request, idempotency_key=None, tag=None)
        self.observer.internal(entry)
        try:
            sent = await self._submitter.send(entry, internal=True)
        except BaseException as exc:
            self.observer.unsent(entry, exc)
            raise
        job: Job[T] = self.start(entry, sent, internal=True)
        return await job

    async def transactions_of(self, tracking_id: str, operation: str) -> tuple[Transaction, ...]:
        """The transactions with ``tracking_id`` that a submit of ``operation`` may have made."""
        found = await self.query(TrackingIdQuery(tracking_id=tracking_id))
        return tuple(tx for tx in found if tx.type in s.types_of(operation))

    # --- polling -------------------------------------------------------------------------

    async def _poll(self, tracked: Tracked) -> None:
        """One poll of one job; the scheduler calls it when the job is due.

        Whatever goes wrong ends this one job, never leaves it pending: an
        error this code did not expect (a bug, a transport raising something
        of its own) stops its polls as `JobAbandoned`, its entry unfinished
        for `resume_all` and its token still good.
        """
        try:
            await self._poll_once(tracked)
        except Exception as exc:
            job = tracked.job
            logger.exception("request_id=%s: an unexpected error stops its polls", job.request_id)
            stopped = JobAbandoned(
                f"an unexpected error stopped the polls ({describe(exc)}); "
                "resume the job with its token",
                request_id=job.request_id,
                tracking_id=job.tracking_id,
            )
            stopped.__cause__ = exc
            if self.end(tracked, error=stopped) and tracked.journal_key is not None:
                await self._submitter.hand_back(tracked.journal_key)  # a worker takes it up

    async def _poll_once(self, tracked: Tracked) -> None:
        job = tracked.job
        if not job.polling:
            return
        if tracked.hold is not None:  # it looks whether a plan came (`Pacing.first`)
            now = self._timebase.monotonic()
            elapsed = self._timebase.time() - tracked.started
            wait, tracked.hold = self._pacing.look(tracked, elapsed, now)
            if wait > 0:
                self._scheduler.schedule(self._origin, now + wait, tracked)
                return
        job.polls += 1
        try:
            answer = await self._http.request("GET", tracked.url, subject=job)
        except AnswerTooLarge as exc:
            too_large = MalformedResponse(str(exc), body=None, request_id=job.request_id)
            await self._carry_out(tracked, s.End(error=too_large, journal=True))
            return
        except httpx.HTTPError as exc:
            outcome: p.PollOutcome = p.Transient(describe(exc), maybe_consumed=not not_sent(exc))
        else:
            outcome = p.decide_poll(
                answer.status_code,
                answer.headers,
                answer.content,
                now=self._timebase.time(),
                created_at=job.created_at,
            )
            if isinstance(outcome, p.Done | p.Failed):
                if self.registry.claimed(job) or not job.polling:
                    # A notification ended the job (or is ending it) while this poll was out.
                    status = outcome.status_code if isinstance(outcome, p.Failed) else None
                    self.observer.late(job, status, outcome.body)
                    return
                with self.registry.claim(job):
                    kept = await self._submitter.keep(tracked.journal_key, outcome, answer, job)
                if isinstance(kept, JournalOutcome):  # another worker's end stands
                    await self.settle_recorded(tracked, kept)
                    return
                outcome = kept
        await self.settle(tracked, outcome)

    async def settle(self, tracked: Tracked, outcome: p.PollOutcome) -> None:
        """Apply an outcome to a pending job: decide its step and carry it out.

        Whatever goes wrong here ends this one job with a typed error that
        carries the answer; every other job goes on.
        """
        job = tracked.job
        if not job.polling:
            return
        now = self._timebase.time()
        try:
            tracked.running_at = self._pacing.learn(
                job.operation, tracked.running_at, now - tracked.started, outcome
            )
            step = s.decide_step(
                job, outcome, lost_reply=tracked.lost_reply, now=now, base_url=self.base_url
            )
        except Exception as exc:
            logger.exception("cannot process an answer for request_id=%s", job.request_id)
            step = s.End(
                error=MalformedResponse(
                    f"cannot process the answer: {describe(exc)}",
                    body=getattr(outcome, "body", None),
                    request_id=job.request_id,
                ),
                journal=not isinstance(outcome, p.Done | p.Failed),
            )
        await self._carry_out(tracked, step)

    async def settle_recorded(self, tracked: Tracked, recorded: JournalOutcome) -> None:
        """End a pending job with an end recorded elsewhere (its body in clear)."""
        job = tracked.job
        outcome = s.recorded_answer(recorded, now=self._timebase.time(), job=job)
        if outcome is not None:
            await self.settle(tracked, outcome)
            return
        error = s.ended_elsewhere(job, recorded.error, recorded.message)
        await self._carry_out(tracked, s.End(error=error, journal=False))

    async def _carry_out(self, tracked: Tracked, step: s.PollStep) -> None:
        job = tracked.job
        if isinstance(step, s.End):
            if step.journal and step.error is not None and tracked.journal_key is not None:
                await self._conclude(tracked, step.error)
            else:
                self.end(tracked, step.value, step.error)
        elif isinstance(step, s.Next):
            if step.note is not None:
                job.last_error = step.note
            tracked.failures = tracked.failures + 1 if step.note is not None else 0
            tracked.lost_reply |= step.lost_reply
            if step.url is not None:
                tracked.url = step.url
            elapsed = self._timebase.time() - tracked.started
            delay = 0.0 if step.now else self._pacing.after(tracked, elapsed, step.retry_after)
            due = self._timebase.monotonic() + delay
            if step.pause_host:
                self._scheduler.pause(self._origin, due)
                self.observer.paused(job, tracked.url, delay)
            if job.polling:
                self._scheduler.schedule(self._origin, due, tracked)
        else:  # LookUp, in a task of its own: its query is polled by this same loop
            assert self._tg is not None  # noqa: S101 - polls run only inside `run`
            self._tg.start_soon(self._settle_lost_reply, tracked)

    def end(self, tracked: Tracked, value: Any = None, error: BaseException | None = None) -> bool:
        """End a pending job (it leaves the registry, then its waiters wake).

        Returns:
            False when the job had ended already (nothing changes then).
        """
        return self._resolve(tracked.job, value, error)

    def _resolve(self, job: Job[Any], value: Any, error: BaseException | None) -> bool:
        if error is not None:
            return job.set_exception(error)
        if not job.set_result(value):
            return False
        if isinstance(value, Transaction) and value.uid and job.tracking_id is not None:
            self.registry.ended_by(value.uid)  # its notification can end no other job
        return True

    def close(self) -> None:
        """End every pending job as abandoned (the Gateway closes), and any answered later.

        Their entries stay unfinished: `resume_all` (or their tokens) pick them up.
        """
        self._closed = True
        self.abandon("the Gateway closed before the job finished", queries=True)

    def abandon(self, why: str, *, queries: bool = False) -> int:
        """End every pending job (``queries``: the library's own too) as abandoned; how many."""
        pending = [t for t in self.registry.pending() if queries or t.journal_key is not None]
        for tracked in pending:
            self.end(tracked, error=s.abandoned(tracked.job, why))
        return len(pending)

    async def _conclude(self, tracked: Tracked, error: BaseException) -> None:
        """End a job with a conclusion of this worker's (lost, expired, ...), journalled first.

        Abandoned jobs stay unfinished (`resume_all` picks them up). On a
        shared journal, an end another worker recorded first stands, and an
        entry another worker holds now is its to end (the job here is
        abandoned).
        """
        job = tracked.job
        if isinstance(error, JobAbandoned) or tracked.journal_key is None:
            self.end(tracked, error=error)
            return
        # A notification being journalled ends it, unless that fails: then this does.
        await self.registry.unclaimed(job)
        if not job.polling:
            return
        standing: JournalOutcome | None = None
        with self.registry.claim(job):
            try:
                standing = await self._submitter.record(tracked.journal_key, error_outcome(error))
            except LeaseLost:
                error = s.abandoned(job, s.HELD_ELSEWHERE)
            except JournalError:
                logger.exception("request_id=%s: cannot journal how the job ended", job.request_id)
        if standing is not None:
            await self.settle_recorded(tracked, standing)
        else:
            self.end(tracked, error=error)

    async def _settle_lost_reply(self, tracked: Tracked) -> None:
        """End a job whose task is unknown after a lost reply, with what its tracking id shows."""
        job = tracked.job
        found: tuple[Transaction, ...] | None = None
        try:
            assert job.tracking_id is not None  # noqa: S101 - `LookUp` needs one
            found = await self.transactions_of(job.tracking_id, job.operation)
        except GatewayError as exc:
            logger.warning("request_id=%s: the tracking-id lookup failed: %s", job.request_id, exc)
        except Exception:  # a bug must not take the poll loop down with this task
            logger.exception("request_id=%s: the tracking-id lookup failed", job.request_id)
        await self._carry_out(tracked, s.End(error=s.lost_after_lookup(job, found), journal=True))
