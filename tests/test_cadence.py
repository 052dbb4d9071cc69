"""The poll plan (dynamic programming) and the adaptive cadence that learns it."""

from __future__ import annotations

import math
import random
import statistics

import anyio
import pytest

import begateway_async as bga
from begateway_async._cadence import MIN_SAMPLES, Cadence, lognormal_cdf, plan
from begateway_async._fitting import fit_lognormal
from begateway_async._pacing import Pacing
from begateway_async._protocol import Done
from begateway_async.testing import (
    DEMO_SHOPS,
    Fault,
    Faults,
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


def _polled(times: list[float], first: float, factor: float) -> tuple[list, list]:
    """What a backoff poller sees of ``times``: the interval of each completion, the running."""
    done, running = [], []
    for t in times:
        before, at = -math.inf, first
        while t > at and at < 4.0:
            before, at = at, at * factor
        if t <= at:
            done.append((math.log(before) if before > 0 else -math.inf, math.log(at)))
        else:
            running.append(math.log(at))
    return done, running


def test_the_fit_recovers_the_spread_from_poll_intervals():
    """Completions known only between two polls: the fit finds the true median and sigma.

    A point inside each interval (the earlier fit) makes every task done at
    the first poll look alike: its sigma came out about half the truth.
    """
    rng = random.Random(4)
    times = [rng.lognormvariate(math.log(0.5), 1.0) for _ in range(2000)]
    done, running = _polled(times, 0.6, 1.35)
    mu, sigma = fit_lognormal(done, running)
    assert 0.42 < math.exp(mu) < 0.6
    assert 0.85 < sigma < 1.15


def test_a_burst_seen_at_one_poll_time_is_planned_on_its_median_alone():
    """Every task polled once, at one time: the median is known (given a spread), not the spread.

    150 done at 0.6 s, 80 still running: 65 % finished before 0.6 s, so with
    a sigma of 1 the median is 0.6 / e^0.385 = 0.41 s. The plan applies at
    once, but is not settled (`Pacing` then polls no later than the
    backoff); once tasks seen running at one poll are done at the next, the
    spread is fitted too.
    """
    cadence = Cadence(running=lambda _: [0.6] * 80)
    for _ in range(MIN_SAMPLES * 5):
        cadence.observe("payment", 0.0, 0.6)
    median = cadence.median("payment")
    assert median is not None
    assert 0.36 < median < 0.46
    assert cadence.next_offset("payment", 0.6) is not None
    assert not cadence.settled("payment")
    for k in range(MIN_SAMPLES):  # then tasks seen running at one poll, done at the next
        cadence.observe("payment", 0.6, 0.8 + k / 100)
    assert cadence.settled("payment")
    assert not cadence.settled("refund")


def _pacing(running: list[float]) -> Pacing:
    policy = bga.PollPolicy(jitter=0.0, lag_weight=6.0)
    return Pacing(policy, None, random.Random(1), lambda _: running)


def test_a_plan_on_the_median_alone_polls_no_later_than_the_backoff():
    """A young plan guessed too long (spread unknown) cannot make polls sparser than the backoff.

    A slow bank: 5 % of a burst done at the first poll. With a sigma of 1
    that is a median of about 3 s, whose plan would wait longer after a poll
    at 0.6 s than the backoff's 0.81 s; until the spread is fitted, the
    backoff's delay is the longest one used. Settled, the plan decides.
    """
    backoff = bga.PollPolicy(jitter=0.0).delay(1, random.Random(1))
    running = [0.6] * 570
    pacing = _pacing(running)
    for _ in range(MIN_SAMPLES):
        pacing.learn("payment", 0.0, 0.6, Done({}))
    young = pacing.delay("payment", polls=1, elapsed=0.6, notified=False, retry_after=None)
    assert young == pytest.approx(backoff)
    running[:] = [3.0] * 150
    for k in range(MIN_SAMPLES):  # seen running at 0.6 s and at 1.4 s, done by 3-6 s
        pacing.learn("payment", 1.4, 3.0 + k / 10, Done({}))
    settled = pacing.delay("payment", polls=1, elapsed=0.6, notified=False, retry_after=None)
    assert settled > backoff


@pytest.mark.anyio
async def test_adaptive_polls_fewer_times_for_slow_banks():
    """With a bank much slower than the backoff expects, learning cuts the polls per job."""

    async def run(adaptive: bool) -> tuple[float, float]:
        clock = VirtualClock()
        simulator = Simulator(clock=clock, processing={"*": LogNormal(20.0, 0.6)}, seed=3)
        gateway = _gateway(simulator, clock, 1, poll=bga.PollPolicy(adaptive=adaptive))
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
    blind_polls, blind_lag = await run(adaptive=False)
    # Aiming at the default 0.25 s, the plan's weight stops at its cap (64): a
    # slow bank is polled less, and noticed sooner, than on the backoff.
    assert learnt_polls < 0.8 * blind_polls
    assert learnt_lag < 0.5 * blind_lag


@pytest.mark.anyio
async def test_the_cadence_counts_from_the_acknowledgement_not_the_queue():
    """A burst that waits for submit slots: the plan learns the bank's time, not the queue's.

    120 payments at once, one submit at a time, each answered 0.5 s later:
    the last one's task begins a minute after its call. Processing takes 1 s.
    Counted from the call, the learnt times would grow with the queue and the
    late jobs be polled tens of seconds late; counted from the acknowledgement,
    they are noticed within a median.
    """
    clock = VirtualClock()
    slow = Fault(rate=1.0, on={"submit"}, delay=0.5)
    simulator = Simulator(clock=clock, processing={"*": LogNormal(1.0, 0.3)}, seed=5)
    simulator.faults = Faults(slow=slow)
    gateway = _gateway(simulator, clock, 2, limits=bga.Limits(concurrent_submits=1))
    jobs: list[bga.Job[bga.Transaction]] = []

    async def one(n: int) -> None:
        job = await gw.submit(_payment(n))
        jobs.append(job)
        await job

    async with clock.autojump(), gateway as gw, anyio.create_task_group() as tg:
        for n in range(120):
            tg.start_soon(one, n)
    stats = [simulator.stats.jobs[job.request_id] for job in jobs[60:]]
    assert stats[-1].created_at - stats[0].created_at > 25  # the queue spanned half a minute
    lag = statistics.median((s.served_at or 0) - s.ready_at for s in stats)
    assert lag < 1.0
    assert statistics.fmean(s.result_polls for s in stats) < 4


@pytest.mark.anyio
@pytest.mark.parametrize("median", [0.2, 0.5])
async def test_a_young_burst_is_polled_on_the_plan_from_its_first_answers(median: float):
    """A burst of 2 000 at once (lognormal, sigma 1): planned on from its scouts' first answers.

    Nothing is known when the burst starts: one job in eight polls early
    (`Pacing.first`), and the plan learnt from them sets the first poll of
    the others. On the same draws, the default notices sooner than the
    backoff alone and than a naive poller (0.5 s sleeps, status then result),
    for under 0.85 times its requests. Before the scouts, every first poll
    came at the backoff's 0.6 s: at a median of 0.2 s, 0.1 s behind naive's.
    """

    async def run(**poll: object) -> tuple[float, float, list[float]]:
        clock = VirtualClock()
        simulator = Simulator(clock=clock, processing={"*": LogNormal(median, 1.0)}, seed=21)
        gateway = _gateway(simulator, clock, 4, poll=bga.PollPolicy(**poll))
        async with clock.autojump(), gateway as gw, anyio.create_task_group() as tg:
            for n in range(2000):
                tg.start_soon(_submit_and_wait, gw, n)
        stats = list(simulator.stats.jobs.values())
        requests = sum(simulator.stats.requests.values()) / len(stats)
        lag = statistics.median((s.served_at or 0) - s.ready_at for s in stats)
        return requests, lag, [s.ready_at - s.created_at for s in stats]

    requests, lag, times = await run()
    _, backoff_lag, _ = await run(adaptive=False)
    naive_requests = statistics.fmean(2 + math.ceil(t / 0.5) for t in times)
    naive_lag = statistics.median(math.ceil(t / 0.5) * 0.5 - t for t in times)
    assert lag < backoff_lag
    assert requests < 0.85 * naive_requests
    assert lag < naive_lag


async def _submit_and_wait(gw: bga.Gateway, n: int) -> None:
    await (await gw.submit(_payment(n)))


def _gateway(simulator: Simulator, clock: VirtualClock, seed: int, **options) -> bga.Gateway:
    """A Gateway on ``simulator`` in process, on virtual time, its jitter seeded."""
    return bga.Gateway(
        "https://gw.test",
        361,
        DEMO_SHOPS["361"],
        transport=SimulatorTransport(simulator),
        clock=clock,
        rng=random.Random(seed),
        **options,
    )


async def _wait(job: bga.Job[bga.Transaction]) -> None:
    await job


def _payment(n: int) -> bga.Payment:
    return payment(100 + n, tracking_id=None)


def test_a_weighted_sample_and_a_warm_start_fit_as_the_whole():
    """A refit looks at an even sample (each entry standing for several), from the last fit.

    Both give the fit of every observation, within the plan's rounding of sigma (0.05).
    """
    rng = random.Random(9)
    times = [rng.lognormvariate(math.log(0.5), 1.0) for _ in range(4000)]
    done, running = _polled(times, 0.6, 1.35)
    whole = fit_lognormal(done, running)
    stride = 4
    sampled = fit_lognormal(
        done[::stride], running[::stride], stride, completed_weight=stride, start=None
    )
    warm = fit_lognormal(done, running, start=(whole[0] + 0.3, whole[1] * 1.4))
    for mu, sigma in (sampled, warm):
        assert abs(mu - whole[0]) < 0.05
        assert abs(sigma - whole[1]) < 0.05
