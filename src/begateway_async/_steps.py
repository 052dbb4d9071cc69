"""What to do after a poll's outcome, without any I/O: the poll step.

`decide_step` is a pure function from a job's facts and a poll's outcome
(`_protocol.decide_poll`) to the next step; the async layer only carries it
out:

=====================================================  ==========================
outcome                                                step
=====================================================  ==========================
`Done`, readable as the operation's result             `End` (the result)
`Done`, unreadable                                     `End` (`MalformedResponse`)
`Failed`                                               `End` (`JobFailed`, `JobRejected`)
`Unknown` (expired)                                    `End` (`JobExpired`)
`Unknown` (lost) after a lost reply, with tracking id  `LookUp` (then `JobLost`)
`Unknown` (lost) otherwise                             `End` (`JobLost`)
`Refused`                                              `End` (`RequestRejected`; the entry stays)
`Malformed` (a redirect, JSON too deep)                `End` (`MalformedResponse`)
`Completed` on the gateway's origin                    `Next` (its URL, at once)
`Completed` off the gateway's origin                   `End` (`UnsafeURL`)
`Throttled`                                            `Next` (pause the host)
`Transient` 24 h or more after creation                `End` (`JobExpired`)
`Transient` earlier                                    `Next` (backoff; note it)
`Processing`                                           `Next`
=====================================================  ==========================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Protocol

import attrs

from ._config import RESULT_RETENTION
from ._errors import (
    GatewayError,
    JobAbandoned,
    JobError,
    JobExpired,
    JobLost,
    MalformedResponse,
    RequestRejected,
    UnsafeURL,
    job_failure,
)
from ._protocol import (
    Completed,
    Done,
    Failed,
    Malformed,
    PollOutcome,
    Refused,
    Throttled,
    Transient,
    Unknown,
    decide_poll,
    resolve_url,
)
from ._records import JournalOutcome
from ._requests import result_kind
from ._serde import parse_result

if TYPE_CHECKING:
    from ._models import Transaction

__all__ = [
    "HELD_ELSEWHERE",
    "QUERIES",
    "End",
    "JobFacts",
    "LookUp",
    "Next",
    "PollStep",
    "abandoned",
    "decide_step",
    "ended_elsewhere",
    "expired",
    "lost_after_lookup",
    "makes_transactions",
    "operations_of",
    "recorded_answer",
    "types_of",
]

#: Operations whose answer is not a transaction of their own: nothing to look up by tracking id.
QUERIES: Final = frozenset({"status_query", "tracking_id_query", "balance_query"})


def types_of(operation: str) -> frozenset[str]:
    """The transaction types an operation's transaction may carry (payouts: also ``credit``)."""
    return frozenset({operation, "credit"}) if operation == "payout" else frozenset({operation})


def operations_of(transaction_type: str) -> tuple[str, ...]:
    """The operations whose submit may have made a transaction of ``transaction_type``."""
    if transaction_type in QUERIES:
        return ()
    return ("credit", "payout") if transaction_type == "credit" else (transaction_type,)


def makes_transactions(operation: str, tracking_id: str | None) -> bool:
    """Whether a tracking-id lookup can tell what became of a submit of ``operation``."""
    return tracking_id is not None and operation not in QUERIES


class JobFacts(Protocol):
    """What `decide_step` needs to know of a job (a `Job` has all of it)."""

    @property
    def request_id(self) -> str:
        """The gateway's task id."""
        ...

    @property
    def tracking_id(self) -> str | None:
        """The merchant's id of the transaction."""
        ...

    @property
    def operation(self) -> str:
        """The operation's name."""
        ...

    @property
    def created_at(self) -> float:
        """Epoch seconds when the task was submitted."""
        ...

    @property
    def response_url(self) -> str:
        """Where the task's result is served."""
        ...


@attrs.frozen
class End:
    """End the job with ``value``, or with ``error`` when it is not None.

    ``journal`` is True when the end must be journalled as the entry's
    outcome (no answer body was put on record for it).
    """

    value: Any = None
    error: GatewayError | None = None
    journal: bool = False


@attrs.frozen
class Next:
    """Poll the job again.

    Attributes:
        retry_after: the server's ``Retry-After``, if it gave one.
        url: poll this URL from now on (``status_url`` said ``completed``).
        now: poll at once (the result is ready), not after a delay.
        pause_host: hold every poll to the host for the delay (throttled).
        note: a passing failure to keep as `Job.last_error`.
        lost_reply: the poll may have reached the gateway and taken a one-shot body.
    """

    retry_after: float | None = None
    url: str | None = None
    now: bool = False
    pause_host: bool = False
    note: str | None = None
    lost_reply: bool = False


@attrs.frozen
class LookUp:
    """Look the job's transactions up by tracking id, then end it as lost with what they show."""


PollStep = End | Next | LookUp


def expired(job: JobFacts) -> JobExpired:
    """The error of a job whose result is gone (24 h after creation)."""
    return JobExpired(
        "the result is gone: 24 hours passed since the task's creation",
        request_id=job.request_id,
        tracking_id=job.tracking_id,
    )


#: Why a job ends here when another worker's claim holds its entry (it concludes it).
HELD_ELSEWHERE: Final = "another worker holds its entry now"


def abandoned(
    job: JobFacts, why: str = "the Gateway closed before the job finished"
) -> JobAbandoned:
    """The error of a job whose polls stop here (its entry unfinished, its token good)."""
    return JobAbandoned(
        f"{why}; resume it with its token",
        request_id=job.request_id,
        tracking_id=job.tracking_id,
    )


def ended_elsewhere(job: JobFacts, error: str | None, message: str | None) -> JobError:
    """The error a job ends with when another worker recorded its end as an error first."""
    said = f"{error}: {message}" if error else "no answer on record"
    request_id, tracking_id = job.request_id, job.tracking_id
    if error == "JobExpired":
        return JobExpired(
            f"another worker ended the job: {message}",
            request_id=request_id,
            tracking_id=tracking_id,
        )
    if error == "JobLost":
        return JobLost(
            f"another worker ended the job: {message}",
            after_lost_reply=False,
            request_id=request_id,
            tracking_id=tracking_id,
        )
    return JobError(
        f"another worker ended the job ({said})", request_id=request_id, tracking_id=tracking_id
    )


def recorded_answer(recorded: JournalOutcome, *, now: float, job: JobFacts) -> Done | Failed | None:
    """The gateway's answer a recorded end holds (a result, a one-shot error body), if any."""
    if recorded.kind not in ("result", "failed") or recorded.body is None:
        return None
    outcome = decide_poll(recorded.status_code or 200, {}, recorded.body, now=now,
                          created_at=job.created_at)  # fmt: skip
    return outcome if isinstance(outcome, Done | Failed) else None


def lost_after_lookup(job: JobFacts, found: tuple[Transaction, ...] | None) -> JobLost:
    """The error of a job unknown after a lost reply, with what its tracking id shows."""
    if found is None:
        what = "the tracking-id lookup failed too"
    elif found:
        what = f"the tracking-id query finds {len(found)} {job.operation} transaction(s)"
    else:
        what = "no transaction has its tracking_id: the task failed and its error body is gone"
    return JobLost(
        f"the reply that may have carried the task's one-shot answer was lost; {what}",
        after_lost_reply=True,
        request_id=job.request_id,
        tracking_id=job.tracking_id,
        transactions=found,
    )


def decide_step(  # noqa: C901, PLR0911, PLR0912 - one return per row of the table
    job: JobFacts, outcome: PollOutcome, *, lost_reply: bool, now: float, base_url: str
) -> PollStep:
    """Decide what to do after a poll's outcome (see the module's table).

    Args:
        job: the job polled.
        outcome: what the answer meant (`decide_poll`).
        lost_reply: whether an earlier poll of the job may have taken a one-shot body.
        now: epoch seconds now, by the client's clock.
        base_url: the gateway's base URL: a result URL must be on its origin.
    """
    request_id, tracking_id = job.request_id, job.tracking_id
    if isinstance(outcome, Done):
        try:
            value = parse_result(result_kind(job.operation), outcome.body, request_id=request_id)
        except MalformedResponse as exc:
            return End(error=exc)
        return End(value)
    if isinstance(outcome, Failed):
        failed = job_failure(
            status_code=outcome.status_code,
            body=outcome.body,
            request_id=request_id,
            tracking_id=tracking_id,
            operation=job.operation,
        )
        return End(error=failed)
    if isinstance(outcome, Unknown):
        if outcome.expired:
            return End(error=expired(job), journal=True)
        if lost_reply and makes_transactions(job.operation, tracking_id):
            # The lost reply may have carried a one-shot error body: find out
            # what the gateway holds before telling the waiters.
            return LookUp()
        lost = JobLost(
            "the gateway does not know the task; reconcile by tracking_id",
            after_lost_reply=lost_reply,
            request_id=request_id,
            tracking_id=tracking_id,
        )
        return End(error=lost, journal=True)
    if isinstance(outcome, Refused):
        refused = RequestRejected(
            status_code=outcome.status_code, body=outcome.body, tracking_id=tracking_id
        )
        # Not journalled as the entry's end: the task may exist and goes on; a
        # Gateway with the right credentials resumes it (`resume_all`).
        return End(error=refused)
    if isinstance(outcome, Malformed):
        unreadable = MalformedResponse(outcome.reason, body=outcome.body, request_id=request_id)
        return End(error=unreadable, journal=True)
    if isinstance(outcome, Completed):
        url = outcome.response_url or job.response_url
        resolved = resolve_url(url, base_url)
        if resolved is None:
            unsafe = UnsafeURL(
                url, expected_origin=base_url, request_id=request_id, tracking_id=tracking_id
            )
            return End(error=unsafe, journal=True)
        return Next(url=resolved, now=True)
    if isinstance(outcome, Throttled):
        return Next(outcome.retry_after, pause_host=True)
    if isinstance(outcome, Transient):
        if now >= job.created_at + RESULT_RETENTION:
            return End(error=expired(job), journal=True)
        return Next(outcome.retry_after, note=outcome.reason, lost_reply=outcome.maybe_consumed)
    return Next(outcome.retry_after)
