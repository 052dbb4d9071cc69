"""Picking jobs up again: from a token, from the journal after a restart, from a journalled end.

- `Recovery.resume` turns a `Job.token` back into a polled job;
- `Recovery.resume_all` picks up every unfinished entry of the journal:
  polls what was acknowledged, re-sends what was not (same ``RequestID``,
  within the gateway's 24 h key window), and reconciles by tracking id what
  is older than that;
- `Recovery.replay` gives the finished job a journalled end stands for (the
  batch runner writes a killed run's answers from it).
"""

from __future__ import annotations

import json
import logging
from typing import Any, TypeVar

import attrs

from . import _protocol as p
from . import _steps as s
from ._clock import Timebase
from ._config import RESULT_RETENTION, origin_of
from ._errors import (
    GatewayError,
    InvalidRequest,
    JobAbandoned,
    JobLost,
    MalformedResponse,
    SubmitRejected,
)
from ._http import describe
from ._jobs import Job, read_token
from ._journal import Journal
from ._records import (
    JournalEntry,
    JournalError,
    JournalNotification,
    JournalOutcome,
    error_outcome,
)
from ._sealing import Sealer
from ._shared import LeaseLost
from ._submit import Submitter, notification_key, task_urls
from ._tracker import Tracker

__all__ = ["Recovery"]

logger = logging.getLogger("begateway_async.jobs")
RecordT = TypeVar("RecordT", JournalEntry, JournalNotification)


class Recovery:
    """Resumes and reconciles the jobs of one gateway and shop.

    Args:
        tracker: starts and polls the jobs.
        submitter: re-sends unacknowledged entries; journals their ends.
        journal: the entries to pick up.
        timebase: the Gateway's time.
        sealer: opens the journalled bodies.
    """

    def __init__(
        self,
        *,
        tracker: Tracker,
        submitter: Submitter,
        journal: Journal,
        timebase: Timebase,
        sealer: Sealer,
    ) -> None:
        self._tracker = tracker
        self._submitter = submitter
        self._journal = journal
        self._timebase = timebase
        self._sealer = sealer

    def resume(self, token: str) -> Job[Any]:
        """Turn a `Job.token` back into a polled job (see `Gateway.resume`)."""
        base_url = self._tracker.base_url
        data = read_token(token)
        if origin_of(data["gateway"]) != origin_of(base_url):
            raise InvalidRequest("token.gateway", f"the job belongs to {data['gateway']!r}")
        request_id, tracking_id = data["request_id"], data.get("tracking_id")
        ack = task_urls(
            p.Ack(request_id, data["status_url"], data["response_url"]),
            base_url,
            tracking_id,
            strict=True,
        )
        entry = JournalEntry(
            key=data.get("idempotency_key") or request_id,
            gateway=base_url,
            shop_id=self._submitter.shop_id,
            operation=data["operation"],
            method="POST",
            path="",
            body=None,
            headers=(),
            tracking_id=tracking_id,
            tag=None,
            created_at=float(data["created_at"]),
        )
        return self._tracker.start(
            entry, ack, resumed=True, key_known=bool(data.get("idempotency_key"))
        )

    async def resume_all(self) -> list[Job[Any]]:
        """Pick up every unfinished entry of this gateway and shop (see `Gateway.resume_all`)."""
        unfinished = await self._journal.unfinished(self._tracker.base_url, self._submitter.shop_id)
        # A submit being sent now is its sender's: its job is not known yet.
        sending = self._tracker.sending
        return [await self.pick_up(entry) for entry in unfinished if entry.key not in sending]

    async def pick_up(self, entry: JournalEntry) -> Job[Any]:
        """The job of one unfinished entry: polled, re-sent, reconciled, or ended with why not.

        An entry whose job this Gateway polls already gives that job.
        """
        tracked = self._tracker.registry.with_key(entry.key)
        if tracked is not None:
            return tracked.job
        try:
            return await self._pick_up(entry, self._timebase.time())
        except GatewayError as exc:
            return self._tracker.ended(entry, error=exc)
        except Exception as exc:  # one entry's surprise never stops the others
            logger.exception("cannot pick up the entry %s", entry.key)
            stopped = JobAbandoned(
                f"an unexpected error stopped picking it up ({describe(exc)})",
                request_id=entry.request_id or entry.key,
                tracking_id=entry.tracking_id,
            )
            stopped.__cause__ = exc
            await self._submitter.hand_back(entry.key)  # on a shared journal: for a worker to try
            return self._tracker.ended(entry, error=stopped)

    async def _pick_up(self, entry: JournalEntry, now: float) -> Job[Any]:
        if entry.request_id is not None:
            return await self._resume_entry(entry)
        if now < entry.created_at + RESULT_RETENTION:
            return await self._tracker.submit(entry)
        return await self._reconcile(entry)

    async def _resume_entry(self, entry: JournalEntry) -> Job[Any]:
        """Poll an acknowledged entry again (or end it, when its result is gone)."""
        assert entry.request_id is not None  # noqa: S101 - acknowledged
        existing = self._tracker.registry.get(entry.request_id)
        if existing is not None:
            return existing.job
        ack = task_urls(
            p.Ack(entry.request_id, entry.status_url, entry.response_url),
            self._tracker.base_url,
            entry.tracking_id,
        )
        if self._timebase.time() >= entry.created_at + RESULT_RETENTION:
            job = self._tracker.job(entry, ack)
            job.set_exception(await self._end(entry, s.expired(job)))
            return job
        return self._tracker.start(entry, ack, resumed=True)

    def replay(self, entry: JournalEntry) -> Job[Any] | None:
        """The finished job a journalled result, one-shot error or refusal stands for.

        None for entries without an answer body on record (unfinished, lost,
        expired, not sent): the entry's ``outcome.error`` and
        ``outcome.message`` say what happened to those that ended.
        """
        entry = self.unseal(entry)
        outcome = entry.outcome
        if outcome is None or outcome.body is None:
            return None
        if outcome.kind == "rejected":
            refused = SubmitRejected(
                status_code=outcome.status_code or 0,
                body=outcome.body.decode("utf-8", "replace"),
                tracking_id=entry.tracking_id,
            )
            return self._tracker.ended(entry, error=refused, quiet=True)
        decided = p.decide_poll(
            outcome.status_code or 200,
            {},
            outcome.body,
            now=self._timebase.time(),
            created_at=entry.created_at,
        )
        if not isinstance(decided, p.Done | p.Failed):
            unreadable = MalformedResponse(
                "the journalled answer is not a result",
                body=outcome.body.decode("utf-8", "replace"),
                request_id=entry.request_id,
            )
            return self._tracker.ended(entry, error=unreadable, quiet=True)
        return self._tracker.answered(entry, decided, quiet=True)

    def unseal(self, record: RecordT) -> RecordT:
        """The journal record with its bodies in clear (see `Gateway.unseal`)."""
        if isinstance(record, JournalNotification):
            body = self._sealer.open(record.body, key=notification_key(record.uid), request=False)
            return attrs.evolve(record, body=body)
        outcome = record.outcome
        if outcome is not None:
            outcome = self._submitter.opened(record.key, outcome)
        body = record.body
        if body is not None:
            body = self._sealer.open(body, key=record.key)
        return attrs.evolve(record, body=body, outcome=outcome)

    async def _reconcile(self, entry: JournalEntry) -> Job[Any]:
        """Learn what became of a submit past the key window, by its tracking id."""
        if entry.operation in s.QUERIES:
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
                found = await self._tracker.transactions_of(entry.tracking_id, entry.operation)
            except GatewayError as exc:
                error = exc
            else:
                if found:
                    body = json.dumps({"transaction": dict(found[0].raw)}).encode()
                    await self._record(entry, JournalOutcome("result", 200, body))
                    return self._tracker.ended(entry, value=found[0])
                error = JobLost(
                    f"no {entry.operation} transaction has tracking_id {entry.tracking_id!r}: "
                    "the submit never created one",
                    after_lost_reply=False,
                    request_id=entry.key,
                    tracking_id=entry.tracking_id,
                )
        return self._tracker.ended(entry, error=await self._end(entry, error))

    async def _end(self, entry: JournalEntry, error: GatewayError) -> GatewayError:
        """Journal this worker's conclusion; the error to end the job with.

        On a shared journal, an entry another worker claimed since is its to
        conclude: the job here is abandoned, and nothing is written.
        """
        try:
            await self._record(entry, error_outcome(error))
        except LeaseLost:
            return JobAbandoned(
                s.HELD_ELSEWHERE, request_id=entry.request_id or entry.key,
                tracking_id=entry.tracking_id,
            )  # fmt: skip
        return error

    async def _record(self, entry: JournalEntry, outcome: JournalOutcome) -> None:
        """Journal how an entry ended; if the journal fails, the next `resume_all` tries again.

        Raises:
            LeaseLost: ``outcome`` is this worker's conclusion, and another
                worker claimed the entry since.
        """
        try:
            await self._submitter.record(entry.key, outcome)
        except LeaseLost:
            raise
        except JournalError:
            logger.exception("cannot journal how the entry %s ended", entry.key)
