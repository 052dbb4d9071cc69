"""When to poll: plans that trade requests for promptness, learnt from what the bank does.

A blind poller pays for promptness in requests. Given the distribution of
processing times, the best plan of poll offsets (from the task's creation)
minimises ``E[polls] + weight * E[lag] / median`` — solved here by dynamic
programming over a geometric time grid (`plan`). The weight is either
given, or solved per fitted distribution so that the plan's expected lag is
a target in seconds (`weight_for`): what a merchant waiting on a payment
feels is seconds, whatever the bank's median. `Cadence` learns that
distribution per operation from the completions it sees (each known to lie
between the last "processing" answer and the first final one), fits a
lognormal to them, and serves offsets from the plan for the fitted
distribution. Until it has seen enough completions, the caller's backoff
policy decides. While every task was polled about once (a young burst), the
polls tell the median (given a spread) but not the spread: the plan is then
fitted on the median with a sigma of 1 and is not `Cadence.settled` (the
caller polls no later than its backoff would).
"""

from __future__ import annotations

import bisect
import collections
import functools
import math
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from ._fitting import fit_lognormal, normal_above

__all__ = ["Cadence", "lognormal_cdf", "plan", "plan_lag", "policy", "weight_for"]

#: Grid of the plan, in multiples of the median: from 1/50 to 60 medians.
_GRID_LOW: Final = 0.02
_GRID_HIGH: Final = 60.0
_GRID_POINTS: Final = 240
_T = TypeVar("_T")

#: Completions needed before a plan replaces the backoff policy; as many of
#: them seen running at one poll and done at the next before its spread is fitted.
MIN_SAMPLES: Final = 30
#: Observations weigh like a moving average over this many completions.
MEMORY: Final = 2000


def lognormal_cdf(t: float, mu: float, sigma: float) -> float:
    """P(T <= t) for T lognormal with parameters ``mu`` and ``sigma``."""
    if t <= 0:
        return 0.0
    if sigma <= 0:
        return 1.0 if math.log(t) >= mu else 0.0
    return 0.5 * (1.0 + math.erf((math.log(t) - mu) / (sigma * math.sqrt(2.0))))


def policy(
    cdf: Callable[[float], float],
    weight: float,
    *,
    low: float = _GRID_LOW,
    high: float = _GRID_HIGH,
    points: int = _GRID_POINTS,
) -> tuple[list[float], list[float]]:
    """The optimal next poll for a task seen running at any time, for processing-time ``cdf``.

    Minimises ``E[polls] + weight * E[lag]`` on a geometric grid between
    ``low`` and ``high`` (in the units of ``cdf``). Backward induction:
    ``J(s)`` is the expected cost still to pay when the task was seen running
    at ``s``, and the next poll ``u`` minimises
    ``1 + (weight * E[(u - T); s < T <= u] + P(T > u) * J(u)) / P(T > s)``.

    Returns:
        ``(grid, after)``: for a task last seen running at ``s`` with
        ``grid[i] <= s < grid[i + 1]``, poll next at ``after[i]`` (``inf``
        past the end of the grid, where the caller's backoff cap takes over).
    """
    ratio = (high / low) ** (1.0 / (points - 1))
    grid = [0.0] + [low * ratio**i for i in range(points)]
    cumulative = [cdf(t) for t in grid]
    n = len(grid)
    # partial[i] approximates E[T; T <= grid[i]] (midpoint rule per cell).
    partial = [0.0] * n
    for i in range(1, n):
        cell = cumulative[i] - cumulative[i - 1]
        partial[i] = partial[i - 1] + cell * (grid[i] + grid[i - 1]) / 2
    cost = [0.0] * n
    after = [math.inf] * n
    cost[-1] = 1.0 + weight * (grid[-1] - grid[-2]) / 2
    for i in range(n - 2, -1, -1):
        survive = 1.0 - cumulative[i]
        best, best_j = math.inf, i + 1
        if survive > 1e-12:  # noqa: PLR2004 - else nothing is left running
            for j in range(i + 1, n):
                lag = grid[j] * (cumulative[j] - cumulative[i]) - (partial[j] - partial[i])
                value = 1.0 + (weight * lag + (1.0 - cumulative[j]) * cost[j]) / survive
                if value < best:
                    best, best_j = value, j
            cost[i] = best
        after[i] = grid[best_j]
    return grid, after


def _follow(grid: Sequence[float], after: Sequence[float]) -> list[float]:
    """The poll offsets of a `policy` followed from 0."""
    offsets: list[float] = []
    here = 0.0
    while math.isfinite(here):
        here = after[bisect.bisect_right(grid, here) - 1]
        if math.isfinite(here):
            offsets.append(here)
        if len(offsets) > len(grid):  # pragma: no cover - after[] always moves forward
            break
    return offsets


def plan(cdf: Callable[[float], float], weight: float) -> list[float]:
    """The optimal poll offsets from a task's creation: `policy` followed from 0."""
    return _follow(*policy(cdf, weight))


@functools.lru_cache(maxsize=256)
def _standard_policy(sigma: float, weight: float) -> tuple[list[float], list[float]]:
    """The policy for a lognormal of median 1 (cached by rounded sigma and weight)."""
    return policy(lambda t: lognormal_cdf(t, 0.0, sigma), weight)


#: The weights `weight_for` chooses from: ``2 ** (k / 8)`` from 1/4 to 64.
#: Below 1/4 a plan is one poll at about two medians whatever the weight; above
#: 64 (8.5 requests per job, a lag of 0.11 medians on sigma 1) a slow
#: operation (3-D Secure at minutes) would be polled many times a minute.
WEIGHTS: Final = tuple(math.pow(2.0, k / 8) for k in range(-16, 49))


@functools.lru_cache(maxsize=2048)
def plan_lag(sigma: float, weight: float) -> float:
    """Expected detection lag, in medians, of the plan for a lognormal of spread ``sigma``.

    The plan is followed from 0; the mass past its last offset (past 60
    medians, where the backoff decides) is left out.
    """
    # E[T; T <= t] = exp(sigma^2 / 2) * Phi((ln t - sigma^2) / sigma) for median 1.
    scale = math.exp(sigma * sigma / 2)
    lag = previous_cdf = previous_partial = 0.0
    for offset in _follow(*_standard_policy(sigma, weight)):
        z = math.log(offset) / sigma
        cdf = 1.0 - normal_above(z)
        partial = scale * (1.0 - normal_above(z - sigma))
        lag += offset * (cdf - previous_cdf) - (partial - previous_partial)
        previous_cdf, previous_partial = cdf, partial
    return lag


def weight_for(sigma: float, lag: float, near: float | None = None) -> float:
    """The least weight of `WEIGHTS` whose plan's expected lag is at most ``lag`` medians.

    Fewest requests for the promptness asked; the largest weight when none is
    that prompt. ``near`` (one of `WEIGHTS`: the last fit's) starts a
    galloping search there: one refit moves the weight a rung or two, which
    costs two or three plans where a bisection over the whole ladder costs
    seven. The answer is the same either way: the lag falls as the weight grows.
    """

    def prompt(k: int) -> bool:
        return plan_lag(sigma, WEIGHTS[k]) <= lag

    top = len(WEIGHTS) - 1
    at = _RUNG.get(near, -1) if near is not None else -1
    # The answer lies in (low, high], with prompt(high) or high == top.
    if at < 0:
        low, high = -1, top
    elif prompt(at):  # steps of 1, 1, 2, 4, ... down
        high, step, moves = at, 1, 0
        while high - step >= 0 and prompt(high - step):
            high, moves = high - step, moves + 1
            step = 1 << max(moves - 1, 0)
        low = max(high - step, -1)
    else:  # and up
        low, step, moves = at, 1, 0
        while low + step < top and not prompt(low + step):
            low, moves = low + step, moves + 1
            step = 1 << max(moves - 1, 0)
        high = min(low + step, top)
    if high == top and not prompt(top):
        return WEIGHTS[top]
    while high - low > 1:
        middle = (low + high) // 2
        if prompt(middle):
            high = middle
        else:
            low = middle
    return WEIGHTS[high]


#: The rung of each weight of `WEIGHTS`.
_RUNG: Final = {weight: k for k, weight in enumerate(WEIGHTS)}


class _Fit:
    """The recent completions of one operation and the plan fitted to them."""

    __slots__ = (
        "after",
        "completed",
        "count",
        "grid",
        "median",
        "refit_at",
        "seen",
        "settled",
        "weight",
    )

    def __init__(self) -> None:
        #: ``(log lower, log upper)`` of each recent completion.
        self.completed: collections.deque[tuple[float, float]] = collections.deque(maxlen=MEMORY)
        self.count = 0
        #: How many of `completed` were seen running before (a finite lower bound).
        self.seen = 0
        self.median = 0.0
        #: The lag weight of the plan.
        self.weight = 0.0
        self.grid: Sequence[float] = ()
        self.after: Sequence[float] = ()
        self.refit_at = MIN_SAMPLES
        #: Whether the plan's spread was fitted too (else only its median, see `Cadence`).
        self.settled = False

    def add(self, lower: float, upper: float) -> None:
        """Keep one completion (logs of its bounds), forgetting the oldest past `MEMORY`."""
        completed = self.completed
        if len(completed) == completed.maxlen and completed[0][0] > -math.inf:
            self.seen -= 1
        completed.append((lower, upper))
        self.seen += lower > -math.inf
        self.count += 1


#: The most completions, and still-running tasks, a refit looks at (a
#: stride sample beyond that: the plan rounds sigma to 0.05, and 500
#: observations fit it within about 3 %; 2 000 cost 5 % of a burst's CPU).
_SAMPLE: Final = 500


def _sample(values: Sequence[_T]) -> tuple[list[_T], float]:
    """At most `_SAMPLE` of ``values``, evenly spread, and how many each stands for."""
    if len(values) <= _SAMPLE:
        return list(values), 1.0
    stride = len(values) / _SAMPLE
    return [values[int(i * stride)] for i in range(_SAMPLE)], stride


class Cadence:
    """Learns processing times per operation and plans polls for them.

    Args:
        lag_weight: what one median of detection lag is worth in polls; higher
            polls more often (followed from the start on lognormal times with
            sigma 1, ``4`` spends 3.5 requests per job, the submit included, for
            a lag p50 of 0.43 medians; ``8`` 4.1 for 0.31). None: the least
            weight of `WEIGHTS` whose plan's expected lag is ``target_lag``
            seconds or less, solved at each fit.
        target_lag: the expected detection lag, in seconds, that the weight
            is solved for when ``lag_weight`` is None.
        running: for an operation, how long (seconds) each of its tasks still
            running has been seen running; the fit needs them (see `fit_lognormal`).
        min_gap: the shortest gap between two polls of one job, in seconds.
    """

    def __init__(
        self,
        lag_weight: float | None = None,
        *,
        target_lag: float = 0.25,
        running: Callable[[str], Sequence[float]] = lambda _: (),
        min_gap: float = 0.05,
    ) -> None:
        self.lag_weight = lag_weight
        self.target_lag = target_lag
        self.min_gap = min_gap
        self._running = running
        self._fits: dict[str, _Fit] = {}

    def observe(self, key: str, lower: float, upper: float) -> None:
        """Record a completion known to lie in ``(lower, upper]`` seconds after creation."""
        upper = max(upper, 1e-3)
        lower = min(max(lower, 0.0), upper)
        fit = self._fits.get(key)
        if fit is None:
            fit = self._fits[key] = _Fit()
        fit.add(math.log(lower) if lower > 0 else -math.inf, math.log(upper))
        if fit.count >= fit.refit_at or (not fit.settled and lower > 0 and fit.seen == MIN_SAMPLES):
            self._refit(key, fit)

    def _refit(self, key: str, fit: _Fit) -> None:
        running = [math.log(t) for t in self._running(key) if t > 0]
        completed, completed_weight = _sample(fit.completed)
        sampled, running_weight = _sample(running)
        settled = fit.seen >= MIN_SAMPLES and len(running) <= 3 * len(fit.completed)
        if settled:
            fit.refit_at = min(fit.count * 2, fit.count + 1000)
            # From the last fit's median (fewer rounds), but sigma from 1 again:
            # a spread the polls cannot tell must not drift from refit to refit.
            start = (math.log(fit.median), 1.0) if fit.grid else None
            held = None
        else:
            # Early in a burst every task was polled about once, at about one
            # time, or only the fastest quarter has finished: that tells how
            # many finished before the poll (so the median, given a spread),
            # not how spread the times are. Plan on the median with a sigma of
            # 1, never polling later than the backoff would (`settled`), and
            # look again soon.
            fit.refit_at = fit.count + max(10, fit.count // 4)
            start, held = None, 1.0
        mu, sigma = fit_lognormal(
            completed,
            sampled,
            running_weight,
            completed_weight=completed_weight,
            start=start,
            sigma=held,
        )
        if not (math.isfinite(mu) and math.isfinite(sigma) and abs(mu) < 50):  # noqa: PLR2004
            return  # nothing sensible to plan on: keep the previous plan
        rounded = round(min(max(sigma, 0.05), 3.0) * 20) / 20
        median = math.exp(mu)
        weight = self.lag_weight
        if weight is None:
            weight = weight_for(rounded, self.target_lag / median, fit.weight or None)
        fit.grid, fit.after = _standard_policy(rounded, weight)
        fit.median = median
        fit.weight = weight
        fit.settled = settled

    def next_offset(self, key: str, elapsed: float) -> float | None:
        """When to poll a task of ``key`` last seen running ``elapsed`` seconds after creation.

        Returns:
            Seconds after creation, at least `min_gap` after ``elapsed``; None
            while still learning, or past the plan (the backoff cap then decides).
        """
        fit = self._fits.get(key)
        if fit is None or not fit.grid:
            return None
        scaled = max(elapsed, 0.0) / fit.median
        following = fit.after[bisect.bisect_right(fit.grid, scaled) - 1]
        if not math.isfinite(following):
            return None
        return max(following * fit.median, elapsed + self.min_gap)

    def settled(self, key: str) -> bool:
        """Whether the plan of ``key`` rests on a fitted spread (else: not after the backoff)."""
        fit = self._fits.get(key)
        return fit is not None and fit.settled

    def median(self, key: str) -> float | None:
        """The fitted median processing time of ``key``, once learnt."""
        fit = self._fits.get(key)
        return fit.median if fit is not None and fit.grid else None

    def weight(self, key: str) -> float | None:
        """The lag weight of the plan of ``key``, once there is one."""
        fit = self._fits.get(key)
        return fit.weight if fit is not None and fit.grid else None
