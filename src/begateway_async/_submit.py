"""Submitting: a request's journal entry, its ``RequestID``, bounded re-sends, the gateway's answer.

`Submitter.send` POSTs (or GETs, for queries) one entry to ``/async/...``
until the answer is definite, always with the entry's own ``RequestID``:
the gateway processes a key once, so a re-send after a lost answer returns
the task the first send created. It journals how a refused or unsent submit
ended, the acknowledgement of an accepted one, and (`Submitter.keep`) the
answer a poll brings; turning the answers into a polled job is the tracker's.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import uuid
from typing import Any

import anyio.lowlevel
import attrs
import httpx

from . import _protocol as p
from ._clock import Timebase
from ._config import Limits, PollPolicy
from ._errors import (
    GatewayError,
    GatewayStateError,
    InvalidRequest,
    SubmitIndeterminate,
    SubmitRejected,
    TransportError,
    UnsafeURL,
)
from ._http import Answer, HttpCore, describe, not_sent
from ._journal import Journal
from ._pacing import resend_delay
from ._records import JournalEntry, JournalError, JournalOutcome, error_outcome
from ._requests import Request
from ._sealing import Sealer
from ._serde import request_body
from ._shared import LeaseLost, SharedJournal
from ._slots import Slots

__all__ = [
    "Sent",
    "Standing",
    "Submitter",
    "notification_key",
    "outcome_key",
    "request_id_header",
    "task_urls",
]

logger = logging.getLogger("begateway_async.jobs")

#: A definite answer to a submit: the task was created, or the result came at once.
Sent = p.Ack | p.Immediate


class Standing(Exception):  # noqa: N818 - not an error: the end another worker recorded
    """A submit's end is on record already (a shared journal's): the job ends with that one.

    Attributes:
        outcome: the end that stands, its body in clear.
    """

    def __init__(self, outcome: JournalOutcome) -> None:
        super().__init__(outcome.kind)
        self.outcome = outcome


def outcome_key(key: str) -> str:
    """What the answer that ended the entry ``key`` is sealed for."""
    return f"{key}/outcome"


def notification_key(uid: str) -> str:
    """What the notification of the transaction ``uid`` is sealed for."""
    return f"{uid}/notification"


def request_id_header(key: object) -> str:
    """Return the ``RequestID`` to send: ``key`` if valid, a fresh UUID for None.

    Raises:
        InvalidRequest: ``key`` is not a string of 1 to 255 characters.
    """
    if key is None:
        return str(uuid.uuid4())
    if not isinstance(key, str) or not 0 < len(key) <= 255:  # noqa: PLR2004
        raise InvalidRequest("idempotency_key", "must be a string of 1 to 255 characters")
    return key


def _task_url(
    url: str | None, base_url: str, ack: p.Ack, tracking_id: str | None, kind: str
) -> str:
    if url is None:
        # The documented URL of the task, when the acknowledgement omits it.
        return f"{base_url}/async/{kind}/{ack.request_id}"
    resolved = p.resolve_url(url, base_url)
    if resolved is None:
        raise UnsafeURL(
            url, expected_origin=base_url, request_id=ack.request_id, tracking_id=tracking_id
        )
    return resolved


def task_urls(ack: p.Ack, base_url: str, tracking_id: str | None, *, strict: bool = False) -> p.Ack:
    """The acknowledgement with absolute URLs on the gateway's origin.

    A missing URL is the documented one; a ``status_url`` off the origin is
    replaced by the ``response_url`` (which answers the same way), unless
    ``strict`` (a token: it was made from URLs already checked).

    Raises:
        UnsafeURL: the ``response_url`` (or, when strict, either URL) is off the origin.
    """
    response_url = _task_url(ack.response_url, base_url, ack, tracking_id, "result")
    try:
        status_url = _task_url(ack.status_url, base_url, ack, tracking_id, "status")
    except UnsafeURL:
        if strict:
            raise
        logger.warning("ignoring a status_url off the gateway origin; polling response_url")
        status_url = response_url
    return p.Ack(ack.request_id, status_url, response_url, completed=ack.completed)


def _headers(entry: JournalEntry) -> list[tuple[str, str]]:
    """A submit's own headers (``RequestID``, the request's, the body's type).

    Raises:
        TypeError: the entry holds headers that are not text (nothing is sent).
    """
    headers = [("RequestID", entry.key), *entry.headers]
    if not all(type(name) is str and type(value) is str for name, value in headers):
        raise TypeError(f"the entry's headers are not text: {entry.headers!r}")
    if entry.body is not None:
        headers.append(("Content-Type", "application/json"))
    return headers


class Submitter:
    """Sends journalled submits and internal queries to one gateway.

    Args:
        base_url: the gateway's base URL.
        shop_id: the shop the entries are made for.
        http: the Gateway's HTTP core.
        journal: where entries and their ends are recorded.
        timebase: the Gateway's time.
        policy: the poll policy (its backoff spaces the re-sends).
        rng: the source of jitter.
        limits: submits in flight, and how many attempts one submit gets.
        sealer: seals each request body before the journal sees it.
    """

    def __init__(
        self,
        *,
        base_url: str,
        shop_id: str,
        http: HttpCore,
        journal: Journal,
        timebase: Timebase,
        policy: PollPolicy,
        rng: random.Random,
        limits: Limits,
        sealer: Sealer,
    ) -> None:
        self.base_url = base_url
        self._sealer = sealer
        self.shop_id = shop_id
        self._http = http
        self._journal = journal
        self._timebase = timebase
        self._policy = policy
        self._rng = rng
        self._attempts = limits.submit_attempts
        self._slots = Slots(limits.concurrent_submits)
        self._shared = journal if isinstance(journal, SharedJournal) else None

    def entry(
        self, request: Request[Any], *, idempotency_key: str | None, tag: str | None
    ) -> JournalEntry:
        """The journal entry of a submit of ``request`` (validating the key and tag).

        Raises:
            InvalidRequest: ``request`` is not a request, or the key or tag is malformed.
        """
        if not isinstance(request, Request):
            raise InvalidRequest("request", f"must be an operation, not {type(request).__name__}")
        if tag is not None and not isinstance(tag, str):
            raise InvalidRequest("tag", f"must be a string, not {type(tag).__name__}")
        key = request_id_header(idempotency_key)
        body = request_body(request)
        return JournalEntry(
            key=key,
            gateway=self.base_url,
            shop_id=self.shop_id,
            operation=request.operation,
            method=request.http_method,
            path=sys.intern("/async" + request.path()),  # one string per endpoint, not per job
            body=None if body is None else self._sealer.seal(body, key=key),
            headers=tuple(request.http_headers.items()),
            tracking_id=request.key,
            tag=tag,
            created_at=self._timebase.time(),
        )

    async def record(self, key: str, outcome: JournalOutcome) -> JournalOutcome | None:
        """Journal how the submit ``key`` ended (its answer sealed), stamped with the clock.

        Returns:
            None when ``outcome`` is recorded; the outcome that stands, its
            body opened, when a shared journal had one from another worker.
        """
        body = outcome.body
        sealed = None if body is None else self._sealer.seal(body, key=outcome_key(key))
        end = attrs.evolve(outcome, body=sealed, finished_at=self._timebase.time())
        standing = await self._journal.finished(key, end)
        return None if standing is None else self.opened(key, standing)

    async def keep(
        self, key: str | None, outcome: p.Done | p.Failed, answer: Answer, job: Any
    ) -> p.PollOutcome | JournalOutcome:
        """Put a poll's result or one-shot error body in the journal before anyone sees it.

        If the journal cannot take it, a result is fetched again later (the
        gateway keeps it 24 hours); a one-shot error body, which cannot be,
        still reaches the waiters, and the failure is logged. A shared
        journal may hold another worker's end already: that one is returned,
        and stands. ``key`` None: a query of the library's own, not journalled.
        """
        if key is None:
            return outcome
        kind = "result" if isinstance(outcome, p.Done) else "failed"
        try:
            end = JournalOutcome(kind, answer.status_code, answer.content)
            standing = await self.record(key, end)
        except JournalError as exc:
            if isinstance(outcome, p.Done):
                return p.Transient(f"the journal cannot take the result: {exc}")
            logger.error(  # noqa: TRY400 - the error is the journal's, described in full
                "request_id=%s: the one-shot error body is not journalled: %s", job.request_id, exc
            )
            return outcome
        return outcome if standing is None else standing

    async def hand_back(self, key: str) -> None:
        """On a shared journal: give up the entry ``key`` (unfinished), for any worker to take."""
        if self._shared is None:
            return
        try:
            await self._shared.hand_back(key)
        except JournalError as exc:  # it then waits for this worker to close, or to die
            logger.warning("cannot hand the entry %s back: %s", key, exc)

    async def _end(self, entry: JournalEntry, outcome: JournalOutcome) -> None:
        """Journal how a submit ended, unless another end stands already.

        Raises:
            Standing: another worker's end came first; it stands.
            SubmitIndeterminate: ``outcome`` was this worker's conclusion, and
                another worker holds the entry now: it sends it (same ``RequestID``).
        """
        try:
            standing = await self.record(entry.key, outcome)
        except LeaseLost:
            raise SubmitIndeterminate(
                tracking_id=entry.tracking_id,
                idempotency_key=entry.key,
                attempts=self._attempts,
                last="another worker holds the entry now, and sends it with this RequestID",
            ) from None
        if standing is not None:
            raise Standing(standing)

    def opened(self, key: str, outcome: JournalOutcome) -> JournalOutcome:
        """The journalled outcome of ``key`` with its body in clear."""
        if outcome.body is None:
            return outcome
        body = self._sealer.open(outcome.body, key=outcome_key(key), request=False)
        return attrs.evolve(outcome, body=body)

    async def send(self, entry: JournalEntry, *, internal: bool = False) -> Sent:
        """Send an entry until its answer is definite; journal what came of it.

        Args:
            entry: the submit (journalled already, unless ``internal``).
            internal: a query the library makes for itself (a tracking-id
                lookup, a follow-up): it takes no submit slot and nothing of
                it is journalled.

        Returns:
            The acknowledgement (absolute URLs on the gateway's origin), or
            the result when the gateway answered at once.

        Raises:
            SubmitRejected: the gateway refused the submit; no task exists.
            SubmitIndeterminate: no attempt told whether a task exists (on a
                shared journal, the entry is handed back: a worker re-sends it).
            TransportError: no attempt left this machine; no task exists.
            UnsafeURL: the gateway answered with a result URL on another origin.
            JournalError: the body was sealed with other credentials; nothing was sent.
            Standing: a shared journal holds another worker's end of the entry.
        """
        content = None if entry.body is None else self._sealer.open(entry.body, key=entry.key)
        headers = _headers(entry)
        url = self.base_url + entry.path
        uncertain = False  # whether any attempt may have reached the gateway
        answer: Answer | None = None
        last = p.Resend("not sent")
        async with contextlib.nullcontext() if internal else self._slots:
            for attempt in range(self._attempts):
                outcome, answer, reached = await self._attempt(entry, url, content, headers)
                if not isinstance(outcome, p.Resend):
                    assert answer is not None  # noqa: S101 - a definite outcome had an answer
                    sent = await self._definite(entry, outcome, answer, internal=internal)
                    if not internal:  # in process, a burst's submits would fill one loop turn:
                        await anyio.lowlevel.cancel_shielded_checkpoint()  # yield, slot held
                    return sent
                last = outcome
                uncertain |= reached
                logger.debug(
                    "submit attempt %d of %s: %s", attempt + 1, entry.operation, outcome.reason
                )
                if attempt + 1 < self._attempts:
                    delay = resend_delay(self._policy, attempt, outcome.retry_after, self._rng)
                    if outcome.throttled:
                        status = answer.status_code if answer else None
                        self._http.observer.resending(entry, url, status, delay)
                    await self._timebase.sleep(delay)
        if uncertain:
            # The entry stays unfinished: `resume_all` re-sends it with this key.
            if not internal:
                await self.hand_back(entry.key)
            raise SubmitIndeterminate(
                tracking_id=entry.tracking_id,
                idempotency_key=entry.key,
                attempts=self._attempts,
                last=last.reason,
            )
        # Every attempt was throttled, or none left this machine: no task exists.
        if answer is None:
            error: GatewayError = TransportError(
                f"cannot reach the gateway, nothing was sent: {last.reason}"
            )
            if not internal:
                await self._end(entry, JournalOutcome("not_sent", message=str(error)))
            raise error
        raise await self._refused(entry, answer, answer.status_code, answer.text, internal=internal)

    async def _attempt(
        self,
        entry: JournalEntry,
        url: str,
        content: bytes | None,
        headers: list[tuple[str, str]],
    ) -> tuple[p.SubmitOutcome, Answer | None, bool]:
        """Send one attempt.

        Returns:
            The outcome, the answer if one came, and whether a task may have
            been created without our knowing (the request may have reached the
            gateway and was not answered definitely, nor only throttled).
        """
        try:
            answer = await self._http.request(
                entry.method, url, content=content, headers=headers, subject=entry
            )
        except httpx.HTTPError as exc:
            return p.Resend(describe(exc)), None, not not_sent(exc)
        except GatewayStateError:
            raise  # closed: nothing was sent
        except Exception as exc:  # a transport's own surprise: it may have been sent
            logger.exception(
                "submit of %s: an unexpected error from the transport", entry.operation
            )
            return p.Resend(describe(exc)), None, True
        outcome = p.decide_submit(
            answer.status_code, answer.headers, answer.content, now=self._timebase.time()
        )
        reached = isinstance(outcome, p.Resend) and not outcome.throttled
        return outcome, answer, reached

    async def _definite(
        self,
        entry: JournalEntry,
        outcome: p.SubmitOutcome,
        answer: Answer,
        *,
        internal: bool,
    ) -> Sent:
        """Journal a definite answer; return it, or raise the refusal."""
        if isinstance(outcome, p.Ack):
            try:
                ack = task_urls(outcome, self.base_url, entry.tracking_id)
            except UnsafeURL as exc:
                if not internal:
                    await self._end(entry, error_outcome(exc))
                raise
            if not internal:
                await self._acknowledged(entry, ack)
            return ack
        if isinstance(outcome, p.Immediate):
            if not internal:
                await self._end(entry, JournalOutcome("result", answer.status_code, answer.content))
            return outcome
        if isinstance(outcome, p.Rejected):
            raise await self._refused(
                entry, answer, outcome.status_code, outcome.body, internal=internal
            )
        raise AssertionError(outcome)  # pragma: no cover - Resend is handled by the caller

    async def _refused(
        self, entry: JournalEntry, answer: Answer, status_code: int, body: Any, *, internal: bool
    ) -> SubmitRejected:
        """Journal a refused submit's end (no task exists); the `SubmitRejected` to raise."""
        if not internal:
            await self._end(entry, JournalOutcome("rejected", status_code, answer.content))
        return SubmitRejected(
            status_code=status_code,
            body=body,
            tracking_id=entry.tracking_id,
            url=self.base_url + entry.path,
        )

    async def _acknowledged(self, entry: JournalEntry, ack: p.Ack) -> None:
        """Journal an acknowledgement; a journal that fails then does not stop the job.

        The task exists: its job is polled all the same. The entry keeps its
        intent, so whoever picks it up re-sends it with its ``RequestID`` and
        meets this same task.
        """
        assert ack.status_url is not None  # noqa: S101 - resolved by `task_urls`
        assert ack.response_url is not None  # noqa: S101
        try:
            await self._journal.acknowledged(
                entry.key, ack.request_id, ack.status_url, ack.response_url
            )
        except JournalError as exc:
            logger.warning(
                "request_id=%s: the acknowledgement is not journalled (%s); polling all the same",
                ack.request_id,
                exc,
            )
