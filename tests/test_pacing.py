"""The first polls of an operation not learnt yet (scouts and looks), and the lag target."""

from __future__ import annotations

import random
import statistics

import pytest

import begateway_async as bga
from begateway_async import _cadence
from begateway_async._cadence import (
    MIN_SAMPLES,
    WEIGHTS,
    Cadence,
    lognormal_cdf,
    plan,
    plan_lag,
    weight_for,
)
from begateway_async._clock import Timebase
from begateway_async._jobs import Job
from begateway_async._pacing import SCOUT_EVERY, SCOUTS, Pacing
from begateway_async._protocol import Done
from begateway_async._registry import Tracked


def _tracked(operation: str = "payment", *, notified: bool = False) -> Tracked:
    job: Job[object] = Job(
        gateway="https://gw.test",
        timebase=Timebase(None),
        request_id="r1",
        status_url="https://gw.test/async/status/r1",
        response_url="https://gw.test/async/result/r1",
        tracking_id=None,
        operation=operation,
        created_at=0.0,
        idempotency_key=None,
        tag=None,
        on_end=lambda _job: None,
    )
    return Tracked(job, job.response_url, notified=notified, running_at=0.0, journal_key=None)


def _pacing(**poll: object) -> Pacing:
    return Pacing(bga.PollPolicy(jitter=0.0, **poll), None, random.Random(1), lambda _: ())


def test_plan_lag_is_the_lag_of_following_the_plan():
    """`plan_lag` (closed form) agrees with following the plan over lognormal draws."""
    rng = random.Random(3)
    draws = [rng.lognormvariate(0.0, 1.0) for _ in range(20_000)]
    for weight in (0.5, 4.0, 32.0):
        offsets = plan(lambda t: lognormal_cdf(t, 0.0, 1.0), weight)
        lags = [next(o for o in offsets if o >= t) - t for t in draws if t <= offsets[-1]]
        assert plan_lag(1.0, weight) == pytest.approx(statistics.fmean(lags), rel=0.03)


def test_the_weight_is_the_least_that_reaches_the_target():
    """`weight_for`: the plan of the weight chosen reaches the lag, the one below does not."""
    for target in (0.15, 0.3, 1.0):
        weight = weight_for(1.0, target)
        index = WEIGHTS.index(weight)
        assert plan_lag(1.0, weight) <= target
        assert index == 0 or plan_lag(1.0, WEIGHTS[index - 1]) > target
    assert weight_for(1.0, 1e-6) == WEIGHTS[-1]  # none is that prompt: the cap
    assert weight_for(1.0, 100.0) == WEIGHTS[0]


def test_a_search_from_the_last_weight_finds_the_same_weight(monkeypatch: pytest.MonkeyPatch):
    """`weight_for(..., near)`: the least prompt-enough weight, from any rung, in fewer plans."""
    plans: list[float] = []
    real = _cadence.plan_lag

    def counted(sigma: float, weight: float) -> float:
        plans.append(weight)
        return real(sigma, weight)

    monkeypatch.setattr(_cadence, "plan_lag", counted)
    for sigma, target in ((1.0, 0.3), (0.5, 0.05), (1.5, 2.0), (1.0, 1e-6), (1.0, 100.0)):
        plans.clear()
        cold = weight_for(sigma, target)
        for near in (WEIGHTS[0], WEIGHTS[20], cold, WEIGHTS[-1]):
            plans.clear()
            assert weight_for(sigma, target, near) == cold
            if near == cold:
                assert len(plans) <= 2  # the same rung: it and the one below (or above)
    plans.clear()
    chosen = weight_for(1.0, 0.3)
    bisection = len(plans)
    plans.clear()
    assert weight_for(1.0, 0.3, WEIGHTS[WEIGHTS.index(chosen) + 1]) == chosen
    assert len(plans) <= 3 < bisection  # one rung off: three plans at most


def test_the_lag_target_is_in_seconds_whatever_the_median():
    """A fast bank gets a small weight, a slow one a large one, each plan's lag near 0.25 s."""
    weights = {}
    for median in (0.2, 0.5, 2.0):
        rng = random.Random(7)
        cadence = Cadence()
        for _ in range(200):  # lognormal, sigma 1, each seen within 5 % of its time
            t = median * rng.lognormvariate(0.0, 1.0)
            cadence.observe("payment", t * 0.95, t)
        weight = cadence.weight("payment")
        fitted = cadence.median("payment")
        assert weight is not None
        assert fitted is not None
        assert fitted == pytest.approx(median, rel=0.2)
        assert plan_lag(1.0, weight) * fitted == pytest.approx(0.25, rel=0.2)
        weights[median] = weight
    assert weights[0.2] < weights[0.5] < weights[2.0] <= WEIGHTS[-1]
    fixed = Cadence(lag_weight=6.0)
    for _ in range(MIN_SAMPLES * 2):
        fixed.observe("payment", 0.4, 0.5)
    assert fixed.weight("payment") == 6.0


def test_scouts_poll_early_and_the_others_look_first():
    """Nothing learnt: one job in eight polls on a ladder up to the backoff's, the rest look."""
    pacing = _pacing()
    firsts = [pacing.first(_tracked(), 0.6) for _ in range(SCOUT_EVERY * SCOUTS + SCOUT_EVERY)]
    scouts = [wait for wait, hold in firsts if hold is None]
    lookers = {(wait, hold) for wait, hold in firsts if hold is not None}
    assert len(scouts) == SCOUTS
    assert scouts == sorted(scouts)
    assert scouts[0] == pytest.approx(0.6 / 8, rel=0.01)
    assert scouts[-1] == pytest.approx(0.6)
    assert lookers == {(0.3, 0.6)}
    # The first jobs of an operation alone keep the backoff's first poll (looks move nothing).
    assert [hold for _, hold in firsts[: SCOUT_EVERY - 1]] == [0.6] * (SCOUT_EVERY - 1)


def test_no_scouts_without_the_adaptive_plan_for_notified_jobs_or_once_learnt():
    """The backoff's first poll stands: adaptive off, a notification expected, or a plan learnt."""
    assert _pacing(adaptive=False).first(_tracked(), 0.6) == (0.6, None)
    assert _pacing().first(_tracked(notified=True), 0.6) == (0.6, None)
    pacing = _pacing()
    for k in range(MIN_SAMPLES):
        pacing.learn("payment", 0.3 + k / 100, 0.6 + k / 100, Done({}))
    assert pacing.first(_tracked(), 0.6) == (0.6, None)
    assert pacing.first(_tracked("refund"), 0.6)[1] == 0.6  # another operation: not learnt


def test_a_look_halves_what_is_left_until_a_plan_comes():
    """A look without a plan waits half of what is left; with one, the plan's first poll."""
    pacing = _pacing()
    tracked = _tracked()
    tracked.hold = 10.6
    assert pacing.look(tracked, 0.3, now=10.3) == (pytest.approx(0.15), 10.6)
    assert pacing.look(tracked, 0.52, now=10.52) == (pytest.approx(0.08), None)  # the last one
    for _ in range(MIN_SAMPLES):
        pacing.learn("payment", 0.0, 0.2, Done({}))  # a fast bank: its plan polls before 0.6
    wait, hold = pacing.look(tracked, 0.3, now=10.3)
    assert hold is None
    assert 0.0 <= wait < 0.3
    slow = _pacing()
    for k in range(MIN_SAMPLES):  # a slow bank: no later than the backoff
        slow.learn("payment", 4.0 + k / 100, 5.0 + k / 100, Done({}))
    assert slow.look(tracked, 0.3, now=10.3) == (pytest.approx(0.3), None)
