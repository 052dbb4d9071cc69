"""When to poll next: ``Retry-After``, the learnt cadence, or the backoff. No I/O.

One `Pacing` per Gateway. It owns the cadence learnt from this gateway's
completions (`Cadence`) and the source of jitter; the poll loop tells it
what each answer showed (`learn`) and asks it for the next delay (`delay`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Final

from ._cadence import Cadence
from ._config import PollPolicy
from ._protocol import Completed, Done, Failed, PollOutcome, Processing
from ._registry import Tracked

__all__ = ["NOT_SEEN", "SCOUTS", "SCOUT_EVERY", "Pacing", "resend_delay"]

#: ``running_at`` of a job whose start was not seen here (resumed, replayed): it teaches nothing.
NOT_SEEN = -1.0
#: While nothing is learnt of an operation, this many of its jobs poll early
#: (see `Pacing.first`): about eight times the completions a plan needs, one
#: job in `SCOUT_EVERY` (so a few jobs alone keep the backoff's first poll).
SCOUTS: Final = 256
SCOUT_EVERY: Final = 8


class Pacing:
    """The poll delays of one Gateway.

    Args:
        poll: the Gateway's poll policy.
        webhook_poll: the policy of jobs whose request names a ``notification_url``
            (polls are then the fallback), or None to poll them like the others.
        rng: the source of jitter.
        running: for an operation, how long each of its pending tasks has been
            seen running (seconds after creation); the cadence's fit needs them.
    """

    __slots__ = ("_cadence", "_rng", "_scouted", "poll", "webhook_poll")

    def __init__(
        self,
        poll: PollPolicy,
        webhook_poll: PollPolicy | None,
        rng: random.Random,
        running: Callable[[str], Sequence[float]],
    ) -> None:
        self.poll = poll
        self.webhook_poll = webhook_poll
        self._rng = rng
        self._cadence = (
            Cadence(poll.lag_weight, target_lag=poll.target_lag, running=running)
            if poll.adaptive
            else None
        )
        #: Per operation with no plan yet, how many of its jobs were started.
        self._scouted: dict[str, int] = {}

    def first(self, tracked: Tracked, delay: float) -> tuple[float, float | None]:
        """When a new job first polls, or first looks whether a plan came (see `look`).

        While nothing is learnt of the job's operation (a burst's first jobs
        all start so), the backoff's ``delay`` would poll every one of them
        at about one time, before anything was learnt. Instead one job in
        `SCOUT_EVERY`, `SCOUTS` at most, polls on a ladder from an eighth of
        ``delay`` up to it: what these scouts find plans the others. Each of
        the others looks at half of ``delay`` whether a plan came meanwhile,
        and polls on it if so (never later than ``delay``).

        Returns:
            ``(wait, hold)``: seconds to the first poll (``hold`` None), or
            to the first look, with ``hold`` seconds to the backoff's first poll.
        """
        cadence = self._cadence
        operation = tracked.job.operation
        if cadence is None or tracked.notified or cadence.median(operation) is not None:
            return delay, None
        started = self._scouted[operation] = self._scouted.get(operation, 0) + 1
        if started % SCOUT_EVERY == 0 and started <= SCOUTS * SCOUT_EVERY:
            return delay * 8.0 ** (started / (SCOUTS * SCOUT_EVERY) - 1.0), None
        return delay / 2, delay

    def look(self, tracked: Tracked, elapsed: float, now: float) -> tuple[float, float | None]:
        """At a look of a job never polled (`Tracked.hold` set), ``now`` on the monotonic clock.

        Returns:
            ``(wait, hold)``: seconds until its first poll (0: now), the
            plan's first offset if a plan came, never after the backoff's; else
            half of what is left to the backoff's, to look again then (``hold``
            kept), until that is under two `Cadence.min_gap`.
        """
        assert tracked.hold is not None  # noqa: S101 - only jobs that look
        left = tracked.hold - now
        cadence = self._cadence
        offset = cadence.next_offset(tracked.job.operation, 0.0) if cadence is not None else None
        if offset is not None:
            return min(max(offset - elapsed, 0.0), left), None
        if cadence is not None and left > 2 * cadence.min_gap:
            return left / 2, tracked.hold
        return max(left, 0.0), None

    def after(self, tracked: Tracked, elapsed: float, retry_after: float | None) -> float:
        """Seconds until the next poll of ``tracked``, ``elapsed`` s after its start (`delay`)."""
        job = tracked.job
        return self.delay(
            job.operation,
            polls=job.polls,
            elapsed=elapsed,
            notified=tracked.notified,
            retry_after=retry_after,
            failures=tracked.failures,
        )

    def delay(
        self,
        operation: str,
        *,
        polls: int,
        elapsed: float,
        notified: bool,
        retry_after: float | None,
        failures: int = 0,
    ) -> float:
        """Seconds until a job's next poll: Retry-After, the learnt plan, or the backoff.

        Args:
            operation: the job's operation.
            polls: how many polls of the job were made.
            elapsed: seconds since the task began (`Tracked.started`).
            notified: whether the job's request names a ``notification_url``.
            retry_after: the server's ``Retry-After``, if any (kept within the policy's bounds).
            failures: passing failures in a row just now: they back off to ``max_delay``.
        """
        policy = self.poll
        if retry_after is not None:
            return min(max(retry_after, policy.min_retry_after), policy.max_retry_after)
        if failures:
            return policy.delay(failures, self._rng)
        if notified and self.webhook_poll is not None:
            return self.webhook_poll.delay(polls, self._rng)  # notifications come first
        cadence = self._cadence
        if cadence is not None:
            offset = cadence.next_offset(operation, elapsed)
            if offset is not None and math.isfinite(offset):
                gap = min(max(offset - elapsed, cadence.min_gap), policy.max_delay)
                gap *= 1.0 + policy.jitter / 4 * (2.0 * self._rng.random() - 1.0)
                if cadence.settled(operation):
                    return gap
                return min(gap, policy.delay(polls, self._rng))  # a plan on the median alone
        return policy.delay(polls, self._rng)

    def learn(
        self, operation: str, running_at: float, elapsed: float, outcome: PollOutcome
    ) -> float:
        """Tell the cadence what an answer says of the task's processing time.

        Args:
            operation: the job's operation.
            running_at: seconds after it began the job was last seen running
                (0 for never, `NOT_SEEN` when it must teach nothing).
            elapsed: seconds since the task began, now.
            outcome: what the answer meant.

        Returns:
            The job's ``running_at`` from now on.
        """
        if self._cadence is None:
            return running_at
        if isinstance(outcome, Processing):
            return elapsed
        if isinstance(outcome, Completed | Done | Failed) and running_at >= 0:
            self._cadence.observe(operation, running_at, elapsed)
            return NOT_SEEN  # observed once
        return running_at


def resend_delay(
    policy: PollPolicy, attempt: int, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds before re-sending a submit whose outcome is unknown (``attempt`` counts from 0).

    The server's ``Retry-After`` (at least ``policy.min_retry_after``) when it
    gave one, else the poll backoff; never more than ``policy.max_retry_after``.
    """
    if retry_after is None:
        return min(policy.delay(attempt, rng), policy.max_retry_after)
    return min(max(retry_after, policy.min_retry_after), policy.max_retry_after)
