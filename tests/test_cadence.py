"""The poll plan (dynamic programming) and the adaptive cadence that learns it."""

from __future__ import annotations

import math
import random
import statistics

import anyio
import pytest

import begateway_async as bga
from begateway_async._cadence import MIN_SAMPLES, Cadence, lognormal_cdf, plan
from begateway_async.testing import (
    DEMO_SHOPS,
    LogNormal,
    Simulator,
    SimulatorTransport,
    VirtualClock,
)
from fakes import payment


def expected(offsets, times, cap=30.0):
    """Requests (polls) and lag p50 of a plan over the given processing times."""
    polls, lags = [], []
    for t in times:
        n, s = 0, 0.0
        for s in offsets:
            n += 1
            if s >= t:
                break
        while s < t:
            s += cap
            n += 1
        polls.append(n)
        lags.append(s - t)
    return statistics.fmean(polls), statistics.median(lags)


_RNG = random.Random(5)
SAMPLE = [_RNG.lognormvariate(0, 1) for _ in range(20_000)]


def test_plan_trades_polls_for_lag():
    """A higher lag weight gives a plan with more polls and less lag; offsets increase."""
    results = []
    for weight in (1.0, 4.0, 16.0):
        offsets = plan(lambda t: lognormal_cdf(t, 0.0, 1.0), weight)
        assert offsets == sorted(offsets)
        results.append(expected(offsets, SAMPLE))
    polls = [r[0] for r in results]
    lags = [r[1] for r in results]
    assert polls == sorted(polls)
    assert lags == sorted(lags, reverse=True)


def test_plan_beats_the_naive_poller():
    """At the naive 1 s status-then-result poller's lag, the plan needs under 0.85x its requests."""
    fixed = [i * 1.0 for i in range(1, 200)]
    status_polls, naive_lag = expected(fixed, SAMPLE)
    naive_requests = 1 + status_polls + 1  # submit, status polls, then the result
    offsets = plan(lambda t: lognormal_cdf(t, 0.0, 1.0), 3.0)
    planned_polls, planned_lag = expected(offsets, SAMPLE)
    assert planned_lag <= naive_lag
    assert 1 + planned_polls < 0.85 * naive_requests


def test_cadence_learns_the_median():
    """After enough completions the cadence plans on the learnt median; before, it defers."""
    cadence = Cadence(lag_weight=4.0)
    rng = random.Random(9)
    assert cadence.next_offset("payment", 0.0) is None
    for _ in range(MIN_SAMPLES * 4):
        t = rng.lognormvariate(math.log(8.0), 0.5)
        cadence.observe("payment", t * 0.9, t * 1.1)
    median = cadence.median("payment")
    assert median is not None
    assert 6.5 < median < 9.5
    first = cadence.next_offset("payment", 0.0)
    assert first is not None
    assert 2.0 < first < 8.0
    later = cadence.next_offset("payment", first)
    assert later is not None
    assert later > first
    assert cadence.next_offset("refund", 0.0) is None  # learnt per operation
    assert cadence.next_offset("payment", 10_000.0) is None  # past the plan: backoff's cap


@pytest.mark.anyio
async def test_adaptive_polls_fewer_times_for_slow_banks():
    """With a bank much slower than the backoff expects, learning cuts the polls per job."""

    async def run(adaptive: bool) -> tuple[float, float]:
        clock = VirtualClock()
        simulator = Simulator(clock=clock, processing={"*": LogNormal(20.0, 0.6)}, seed=3)
        gateway = bga.Gateway(
            "https://gw.test",
            361,
            DEMO_SHOPS["361"],
            transport=SimulatorTransport(simulator),
            clock=clock,
            rng=random.Random(1),
            poll=bga.PollPolicy(adaptive=adaptive),
        )
        late: list[bga.Job[bga.Transaction]] = []
        async with clock.autojump(), gateway as gw:
            for wave in range(4):
                async with anyio.create_task_group() as tg:
                    for n in range(60):
                        job = await gw.submit(_payment(wave * 100 + n))
                        if wave == 3:
                            late.append(job)
                        tg.start_soon(_wait, job)
        stats = [simulator.stats.jobs[job.request_id] for job in late]
        polls = statistics.fmean(s.result_polls for s in stats)
        lag = statistics.median((s.served_at or 0) - s.ready_at for s in stats)
        return polls, lag

    learnt_polls, learnt_lag = await run(adaptive=True)
    blind_polls, _ = await run(adaptive=False)
    assert learnt_polls < 0.6 * blind_polls
    assert learnt_lag < 0.5 * 20.0  # and it still notices within half a median


async def _wait(job: bga.Job[bga.Transaction]) -> None:
    await job


def _payment(n: int) -> bga.Payment:
    return payment(100 + n, tracking_id=None)
