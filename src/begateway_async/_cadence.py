"""When to poll: plans that trade requests for promptness, learnt from what the bank does.

A blind poller pays for promptness in requests. Given the distribution of
processing times, the best plan of poll offsets (from the task's creation)
minimises ``E[polls] + weight * E[lag] / median`` — solved here by dynamic
programming over a geometric time grid (`plan`). `Cadence` learns that
distribution per operation from the completions it sees (each known to lie
between the last "processing" answer and the first final one), fits a
lognormal to them, and serves offsets from the plan for the fitted
distribution. Until it has seen enough completions, the caller's backoff
policy decides.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable, Sequence
from typing import Final

__all__ = ["Cadence", "lognormal_cdf", "plan"]

#: Grid of the plan, in multiples of the median: from 1/50 to 60 medians.
_GRID_LOW: Final = 0.02
_GRID_HIGH: Final = 60.0
_GRID_POINTS: Final = 240
#: Completions needed before the learnt plan replaces the backoff policy.
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


def plan(
    cdf: Callable[[float], float],
    weight: float,
    *,
    low: float = _GRID_LOW,
    high: float = _GRID_HIGH,
    points: int = _GRID_POINTS,
) -> list[float]:
    """The poll offsets minimising ``E[polls] + weight * E[lag]`` for processing-time ``cdf``.

    Offsets are chosen on a geometric grid between ``low`` and ``high``
    (in the units of ``cdf``); after the last one, the caller polls at its
    backoff cap. Backward induction: ``J(s)`` is the expected cost still to
    pay when the task was seen running at ``s``, and the next poll ``u``
    minimises ``1 + (weight * E[(u - T); s < T <= u] + P(T > u) * J(u)) / P(T > s)``.
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
    after = list(range(1, n + 1))
    cost[-1] = 1.0 + weight * (grid[-1] - grid[-2]) / 2
    for i in range(n - 2, -1, -1):
        survive = 1.0 - cumulative[i]
        if survive <= 1e-12:  # noqa: PLR2004 - nothing is left running
            continue
        best, best_j = math.inf, i + 1
        for j in range(i + 1, n):
            lag = grid[j] * (cumulative[j] - cumulative[i]) - (partial[j] - partial[i])
            value = 1.0 + (weight * lag + (1.0 - cumulative[j]) * cost[j]) / survive
            if value < best:
                best, best_j = value, j
        cost[i], after[i] = best, best_j
    offsets: list[float] = []
    i = 0
    while after[i] < n:
        i = after[i]
        offsets.append(grid[i])
    return offsets


@functools.lru_cache(maxsize=256)
def _standard_plan(sigma: float, weight: float) -> tuple[float, ...]:
    """The plan for a lognormal of median 1 (cached by rounded sigma and weight)."""
    return tuple(plan(lambda t: lognormal_cdf(t, 0.0, sigma), weight))


class _Fit:
    """A running lognormal fit of completion times, with a fading memory."""

    __slots__ = ("count", "mean", "offsets", "refit_at", "square")

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.square = 0.0
        self.offsets: Sequence[float] = ()
        self.refit_at = MIN_SAMPLES

    def add(self, log_time: float) -> None:
        self.count += 1
        alpha = 1.0 / min(self.count, MEMORY)
        self.mean += alpha * (log_time - self.mean)
        self.square += alpha * (log_time * log_time - self.square)

    @property
    def sigma(self) -> float:
        return math.sqrt(max(0.0, self.square - self.mean * self.mean))


class Cadence:
    """Learns processing times per operation and plans polls for them.

    Args:
        lag_weight: what one median of detection lag is worth in polls; higher
            polls more often (``4`` gives about 3.5 requests per job at a lag
            p50 of about 0.4 medians on lognormal times with sigma 1).
        min_gap: the shortest gap between two polls of one job, in seconds.
    """

    def __init__(self, lag_weight: float = 4.0, *, min_gap: float = 0.05) -> None:
        self.lag_weight = lag_weight
        self.min_gap = min_gap
        self._fits: dict[str, _Fit] = {}

    def observe(self, key: str, lower: float, upper: float) -> None:
        """Record a completion known to lie in ``(lower, upper]`` seconds after creation."""
        upper = max(upper, 1e-3)
        lower = min(max(lower, 0.0), upper)
        middle = math.sqrt(lower * upper) if lower > 0 else upper / 2
        fit = self._fits.get(key)
        if fit is None:
            fit = self._fits[key] = _Fit()
        fit.add(math.log(max(middle, 1e-3)))
        if fit.count >= fit.refit_at:
            fit.refit_at = min(fit.count * 2, fit.count + 1000)
            sigma = round(min(max(fit.sigma, 0.05), 3.0), 2)
            median = math.exp(fit.mean)
            fit.offsets = [median * x for x in _standard_plan(sigma, self.lag_weight)]

    def next_offset(self, key: str, elapsed: float) -> float | None:
        """The next planned poll offset after ``elapsed`` seconds, or None while still learning."""
        fit = self._fits.get(key)
        if fit is None or not fit.offsets:
            return None
        offsets = fit.offsets
        index = bisect.bisect_right(offsets, elapsed + self.min_gap)
        if index >= len(offsets):
            return None  # past the plan: the backoff cap takes over
        return offsets[index]

    def median(self, key: str) -> float | None:
        """The fitted median processing time of ``key``, once learnt."""
        fit = self._fits.get(key)
        return math.exp(fit.mean) if fit is not None and fit.offsets else None
