"""When to poll next: ``Retry-After``, the learnt cadence, or the backoff. No I/O.

One `Pacing` per Gateway. It owns the cadence learnt from this gateway's
completions (`Cadence`) and the source of jitter; the poll loop tells it
what each answer showed (`learn`) and asks it for the next delay (`delay`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from ._cadence import Cadence
from ._config import PollPolicy
from ._protocol import Completed, Done, Failed, PollOutcome, Processing

__all__ = ["NOT_SEEN", "Pacing", "resend_delay"]

#: ``running_at`` of a job whose start was not seen here (resumed, replayed): it teaches nothing.
NOT_SEEN = -1.0


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

    __slots__ = ("_cadence", "_rng", "poll", "webhook_poll")

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
        self._cadence = Cadence(poll.lag_weight, running=running) if poll.adaptive else None

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
