"""The scheduler alone: due times, per-host caps, per-host pauses, on virtual time."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import anyio
import pytest

from begateway_async._clock import Timebase
from begateway_async._scheduler import TOLERANCE, Scheduler
from begateway_async.testing import VirtualClock, settle

pytestmark = pytest.mark.anyio


class Item:
    """A fake job entry that records when it was polled."""

    def __init__(self, host: str, due: float) -> None:
        self.host = host
        self.due = due
        self.polling = True
        self.fired: list[float] = []


class Recorder:
    """A fake poll that takes ``duration`` of virtual time and records concurrency per host."""

    def __init__(self, clock: VirtualClock, duration: float = 0.0) -> None:
        self.clock = clock
        self.duration = duration
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.count = 0
        self.all_fired = anyio.Event()
        self.expected = 0

    async def __call__(self, item: Item) -> None:
        """Poll ``item``."""
        item.fired.append(self.clock.monotonic())
        self.in_flight[item.host] += 1
        self.peak[item.host] = max(self.peak[item.host], self.in_flight[item.host])
        try:
            if self.duration:
                await self.clock.sleep(self.duration)
        finally:
            self.in_flight[item.host] -= 1
        self.count += 1
        if self.count == self.expected:
            self.all_fired.set()


async def run_until_fired(clock, scheduler, recorder, expected):
    """Run the scheduler until ``expected`` polls fired, or 10 000 virtual seconds passed."""
    recorder.expected = expected
    async with clock.autojump(), anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        await clock.wait(recorder.all_fired, 10_000.0)  # a stuck loop fails, never hangs
        tg.cancel_scope.cancel()
    assert recorder.count == expected


async def test_thousands_of_jobs_on_two_hosts():
    """3000 jobs on two hosts: each fires once, never before due, never above its host's cap."""
    clock = VirtualClock()
    recorder = Recorder(clock, duration=0.05)
    scheduler: Scheduler[Item] = Scheduler(Timebase(clock), recorder, cap=8)
    rng = random.Random(3)
    items = [Item(rng.choice("ab"), rng.uniform(0, 30)) for _ in range(3000)]
    for item in items:
        scheduler.schedule(item.host, item.due, item)
    await run_until_fired(clock, scheduler, recorder, len(items))
    assert all(len(item.fired) == 1 for item in items)
    # "Due" includes the scheduler's one-millisecond tolerance, and no more.
    assert all(item.fired[0] >= item.due - TOLERANCE for item in items)
    assert recorder.peak["a"] == 8
    assert recorder.peak["b"] == 8
    # Backlog aside, a poll is made promptly: most within one poll's duration of due.
    late = sorted(item.fired[0] - item.due for item in items)
    assert late[len(late) // 2] < 0.05


async def test_a_paused_host_waits_and_the_other_goes_on():
    """A pause (429/503) holds only its own host's polls until it ends."""
    clock = VirtualClock()
    recorder = Recorder(clock)
    scheduler: Scheduler[Item] = Scheduler(Timebase(clock), recorder, cap=4)
    items = [Item(host, due) for host in "ab" for due in (1.0, 2.0, 3.0, 50.0)]
    for item in items:
        scheduler.schedule(item.host, item.due, item)
    scheduler.pause("a", 10.0)
    assert scheduler.paused_until("a") == 10.0
    await run_until_fired(clock, scheduler, recorder, len(items))
    fired = {(i.host, i.due): i.fired[0] for i in items}
    assert [fired["b", d] for d in (1.0, 2.0, 3.0, 50.0)] == [1.0, 2.0, 3.0, 50.0]
    assert [fired["a", d] for d in (1.0, 2.0, 3.0)] == [10.0, 10.0, 10.0]
    assert fired["a", 50.0] == 50.0


async def test_a_pause_cannot_be_shortened():
    """Of two pauses of one host, the later end wins."""
    scheduler: Scheduler[Item] = Scheduler(
        Timebase(VirtualClock()), Recorder(VirtualClock()), cap=1
    )
    scheduler.pause("a", 30.0)
    scheduler.pause("a", 5.0)
    assert scheduler.paused_until("a") == 30.0
    assert scheduler.paused_until("b") < 0


async def test_nothing_fires_before_it_is_due():
    """Stepping time by hand: a poll fires at its due time, not a moment before."""
    clock = VirtualClock()
    recorder = Recorder(clock)
    scheduler: Scheduler[Item] = Scheduler(Timebase(clock), recorder, cap=4)
    item = Item("a", 5.0)
    scheduler.schedule("a", 5.0, item)
    async with anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        await clock.advance(4.9)
        assert item.fired == []
        await clock.advance(0.1)
        assert item.fired == [5.0]
        # An earlier poll scheduled while the loop sleeps wakes it early.
        early = Item("a", 6.0)
        scheduler.schedule("a", 6.0, early)
        later = Item("a", 100.0)
        scheduler.schedule("a", 100.0, later)
        await clock.advance(1.0)
        assert early.fired == [6.0]
        assert later.fired == []
        tg.cancel_scope.cancel()


async def test_cap_holds_the_backlog_until_a_slot_frees():
    """With every poll slow, exactly `cap` run at once; the rest start as slots free up."""
    clock = VirtualClock()
    recorder = Recorder(clock, duration=1.0)
    scheduler: Scheduler[Item] = Scheduler(Timebase(clock), recorder, cap=10)
    items = [Item("a", 0.0) for _ in range(35)]
    for item in items:
        scheduler.schedule("a", 0.0, item)
    async with anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        await settle()
        assert recorder.in_flight["a"] == 10
        await clock.advance(1.0)
        assert recorder.in_flight["a"] == 10
        assert recorder.count == 10
        await clock.advance(3.0)
        assert recorder.count == 35
        tg.cancel_scope.cancel()
    starts = Counter(item.fired[0] for item in items)
    assert starts == {0.0: 10, 1.0: 10, 2.0: 10, 3.0: 5}


async def test_ended_jobs_are_skipped():
    """An entry whose job ended (or was abandoned) is dropped without a poll."""
    clock = VirtualClock()
    recorder = Recorder(clock)
    scheduler: Scheduler[Item] = Scheduler(Timebase(clock), recorder, cap=4)
    alive, ended = Item("a", 1.0), Item("a", 1.0)
    ended.polling = False
    scheduler.schedule("a", 1.0, ended)
    scheduler.schedule("a", 1.0, alive)
    await run_until_fired(clock, scheduler, recorder, 1)
    assert alive.fired == [1.0]
    assert ended.fired == []
    assert scheduler.queued() == 0


async def test_a_failing_poll_does_not_stop_the_others(caplog):
    """A poll that raises is logged; the scheduler and the other polls go on."""
    clock = VirtualClock()
    fired: defaultdict[str, int] = defaultdict(int)
    done = anyio.Event()

    async def fire(item: Item) -> None:
        fired[item.host] += 1
        if item.host == "bad":
            raise RuntimeError("boom")
        if fired["good"] == 2:
            done.set()

    scheduler: Scheduler[Item] = Scheduler(Timebase(clock), fire, cap=4)
    scheduler.schedule("bad", 1.0, Item("bad", 1.0))
    scheduler.schedule("good", 1.0, Item("good", 1.0))
    scheduler.schedule("good", 2.0, Item("good", 2.0))
    async with clock.autojump(), anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        await done.wait()
        tg.cancel_scope.cancel()
    assert fired == {"bad": 1, "good": 2}
    assert "poll failed unexpectedly" in caplog.text


async def test_a_freed_slot_wakes_the_loop_for_a_later_head():
    """With the cap full, a poll due later than now still fires on time once a slot frees."""
    clock = VirtualClock()
    recorder = Recorder(clock, duration=1.0)
    scheduler: Scheduler[Item] = Scheduler(Timebase(clock), recorder, cap=2)
    busy = [Item("a", 0.0), Item("a", 0.0)]
    later = Item("a", 5.0)
    for item in [*busy, later]:
        scheduler.schedule("a", item.due, item)
    await run_until_fired(clock, scheduler, recorder, 3)
    assert later.fired == [5.0]


async def test_a_job_s_waiter_runs_before_the_worker_s_next_poll_when_polls_never_wait(
    anyio_backend: tuple[str, dict[str, object]],
):
    """A transport that never suspends (an app in process): an end's waiter is not left behind.

    On asyncio it runs before the worker's next poll; Trio runs each batch of
    ready tasks in a random order, so there it runs at most one poll later.
    """
    clock = VirtualClock()
    order: list[str] = []
    ended = {name: anyio.Event() for name in ("a", "b", "c")}

    async def fire(item: Item) -> None:  # answers at once: no await inside
        order.append(f"poll {item.host}")
        item.polling = False  # the job ended with this answer
        ended[item.host].set()

    async def waiter(name: str) -> None:
        await ended[name].wait()
        order.append(f"woken {name}")

    scheduler: Scheduler[Item] = Scheduler(Timebase(clock), fire, cap=1)
    for name in ended:  # one host, one slot: one worker takes them in turn
        scheduler.schedule("gw", 1.0, Item(name, 1.0))
    with anyio.fail_after(10):  # a stuck loop fails, never hangs
        async with clock.autojump(), anyio.create_task_group() as tg:
            tg.start_soon(scheduler.run)
            async with anyio.create_task_group() as waiters:
                for name in ended:
                    waiters.start_soon(waiter, name)
            tg.cancel_scope.cancel()
    if anyio_backend[0] == "asyncio":
        assert order == ["poll a", "woken a", "poll b", "woken b", "poll c", "woken c"]
    polls = [entry for entry in order if entry.startswith("poll")]
    assert polls == ["poll a", "poll b", "poll c"]
    for n, name in enumerate("abc"):  # after its poll, and before the poll after next
        assert order.index(f"poll {name}") < order.index(f"woken {name}")
        if n + 2 < len(polls):
            assert order.index(f"woken {name}") < order.index(polls[n + 2])
