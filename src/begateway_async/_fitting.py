"""Fitting a lognormal to what a poller sees: completions known between two polls, and the running.

A poller does not see when a task finished, only that it was running at one
poll and done at the next; and while a burst is young most of its tasks are
still running. `fit_lognormal` is maximum likelihood with interval and right
censoring, by expectation-maximisation, for `Cadence`.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from typing import Final

__all__ = ["fit_lognormal", "normal_above"]

_SQRT2: Final = math.sqrt(2.0)
_SQRT2PI: Final = math.sqrt(2.0 * math.pi)


def normal_above(z: float) -> float:
    """``P(Z > z)`` for a standard normal ``Z`` (accurate far in the right tail)."""
    return 0.5 * math.erfc(z / _SQRT2)


def _moments(low: float, high: float, mu: float, sigma: float) -> tuple[float, float]:
    """``E[X]`` and ``E[X^2]`` of ``X ~ N(mu, sigma)`` given ``low < X <= high``.

    ``low`` may be ``-inf`` (seen done at the first poll: only ``X <= high``
    is known), ``high`` may be ``inf`` (still running at ``low``).
    """
    a = (low - mu) / sigma
    b = (high - mu) / sigma
    mass = normal_above(a) - normal_above(b)
    if mass < 1e-12:  # noqa: PLR2004 - far in a tail: the nearer bound is as good as any
        x = low if math.isfinite(low) and (not math.isfinite(high) or abs(a) < abs(b)) else high
        return x, x * x
    pa = math.exp(-0.5 * a * a) / _SQRT2PI if math.isfinite(a) else 0.0
    pb = math.exp(-0.5 * b * b) / _SQRT2PI if math.isfinite(b) else 0.0
    apa = a * pa if math.isfinite(a) else 0.0
    bpb = b * pb if math.isfinite(b) else 0.0
    shift = (pa - pb) / mass
    mean = mu + sigma * shift
    variance = sigma * sigma * max(1.0 + (apa - bpb) / mass - shift * shift, 0.0)
    return mean, variance + mean * mean


def fit_lognormal(
    completed: Sequence[tuple[float, float]],
    running: Sequence[float],
    running_weight: float = 1.0,
    *,
    completed_weight: float = 1.0,
    start: tuple[float, float] | None = None,
    sigma: float | None = None,
) -> tuple[float, float]:
    """Fit a lognormal to completions known only between two polls, counting the tasks running.

    A poller does not see when a task finished, only that it was running at
    one poll and done at the next: each completion is an interval
    ``(lower, upper]`` of ``log T`` (``lower`` is ``-inf`` for a task done
    at its first poll). Taking a point inside it (the old way) makes every
    task done at the first poll look alike, and the fitted spread comes out
    far too narrow while a burst is young. Without the running ones, a burst
    is judged by its fastest tasks (they finish first) and the fit comes out
    far too short. This is maximum likelihood with interval and right
    censoring, by expectation-maximisation: each observation contributes the
    moments of ``log T`` given what is known of it. Bounds are binned to
    0.01 in ``log T`` (1 % of the time, far finer than the spread rounded to
    0.05 that a plan is made for): tasks polled on one plan share their
    bounds, so a few dozen bins stand for hundreds of completions.

    Args:
        completed: ``(log lower, log upper)`` of each completion (equal: known exactly).
        running: log of how long each still-running task has run.
        running_weight: how many tasks each entry of ``running`` stands for.
        completed_weight: how many completions each entry of ``completed`` stands for.
        start: ``(mu, sigma)`` to start from; by default the completions'
            midpoints and a sigma of 1.
        sigma: hold the spread at this value and fit the median alone (what
            polls all made at about one time can tell).

    Returns:
        ``(mu, sigma)`` of ``log T``.
    """
    cw, rw = completed_weight, running_weight
    n = cw * len(completed) + rw * len(running)
    bins = collections.Counter((round(low, 2), round(high, 2)) for low, high in completed)
    intervals = [(low, high, cw * k) for (low, high), k in bins.items()]
    waiting = [(c, rw * k) for c, k in collections.Counter(round(c, 2) for c in running).items()]
    if start is None:
        points = [high if not math.isfinite(low) else (low + high) / 2 for low, high in completed]
        # From 1, not from the points' spread: what the polls cannot tell apart
        # (the spread, while every task was polled about as often) stays near it.
        mu, spread = sum(points) / len(points), 1.0
    else:
        mu, spread = start
    if sigma is not None:
        spread = sigma
    for _ in range(40):
        first = second = 0.0
        for low, high, w in intervals:
            if high - low < 1e-9:  # noqa: PLR2004 - a point
                first += w * high
                second += w * high * high
            else:
                m1, m2 = _moments(low, high, mu, spread)
                first += w * m1
                second += w * m2
        for c, w in waiting:
            m1, m2 = _moments(c, math.inf, mu, spread)
            first += w * m1
            second += w * m2
        new_mu = first / n
        if sigma is None:
            new_spread = max(math.sqrt(max(second / n - new_mu * new_mu, 0.0)), 0.05)
        else:
            new_spread = sigma
        converged = abs(new_mu - mu) < 1e-4 and abs(new_spread - spread) < 1e-4  # noqa: PLR2004
        mu, spread = new_mu, new_spread
        if converged:
            break
    return mu, spread
