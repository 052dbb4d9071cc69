"""One polling scheduler per Gateway: a min-heap of due polls per gateway host.

No task and no timer per job, and no task per poll: a pending job is one
heap entry, and polls run in long-lived workers (at most a host's in-flight
cap of them per host). The `Scheduler.run` loop wakes at the earliest due
time of any host, takes every due entry of each host up to that host's cap,
and hands them to idle workers (starting one only when none is idle). A
worker whose poll is done takes the next due entry of the same host itself,
without waking the loop; but after a poll that ended its job it lets the
event loop run first, so that the job's waiters go before the worker's next
poll (with a transport that never waits, an app served in process, a
worker would otherwise run every due poll before any caller woke: 140 ms
at the 90th percentile in a burst of 2 000). A host can be paused (429,
503 with ``Retry-After``): its entries wait, every other host goes on.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel

from ._clock import Timebase

__all__ = ["Scheduler"]

logger = logging.getLogger("begateway_async.jobs")

#: Anything due within this many seconds counts as due now. Waking for
#: sub-millisecond gaps only spins the loop (libuv timers are 1 ms coarse).
TOLERANCE = 0.001


class Pollable(Protocol):
    """What the scheduler needs of an entry: whether it still wants its poll."""

    @property
    def polling(self) -> bool:
        """False once the entry's job has ended or been abandoned."""
        ...


ItemT = TypeVar("ItemT", bound=Pollable)


class _Host(Generic[ItemT]):
    __slots__ = ("heap", "in_flight", "paused_until")

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, ItemT]] = []
        self.in_flight = 0
        self.paused_until = -math.inf


class Scheduler(Generic[ItemT]):
    """Fire due polls per host, at most ``cap`` in flight per host.

    Args:
        timebase: the time line due times are on.
        fire: the poll itself; it reschedules its item when it wants another.
        cap: polls in flight per host.
    """

    def __init__(
        self, timebase: Timebase, fire: Callable[[ItemT], Awaitable[None]], *, cap: int
    ) -> None:
        self._time = timebase
        self._fire = fire
        self._cap = cap
        self._hosts: dict[Hashable, _Host[ItemT]] = {}
        self._seq = itertools.count()
        self._kick = anyio.Event()
        self._next_wake = math.inf
        #: Polls taken from the heaps (counted in flight), not yet picked up by a worker.
        self._ready: deque[tuple[_Host[ItemT], ItemT]] = deque()
        #: The wake-up events of the workers waiting for work.
        self._idle: list[anyio.Event] = []
        #: Workers started or woken that have not looked at ``_ready`` yet.
        self._coming = 0

    def schedule(self, host: Hashable, due: float, item: ItemT) -> None:
        """Queue ``item``'s next poll at monotonic time ``due``."""
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host[ItemT]()
        heapq.heappush(state.heap, (due, next(self._seq), item))
        if due < self._next_wake:
            self._kick.set()

    def pause(self, host: Hashable, until: float) -> None:
        """Hold every poll to ``host`` until monotonic time ``until``."""
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host[ItemT]()
        state.paused_until = max(state.paused_until, until)

    def paused_until(self, host: Hashable) -> float:
        """Return when ``host``'s pause ends (-inf when it is not paused)."""
        state = self._hosts.get(host)
        return state.paused_until if state is not None else -math.inf

    def queued(self) -> int:
        """Return how many polls wait in the heaps (stale entries included)."""
        return sum(len(h.heap) for h in self._hosts.values())

    def tick(self, now: float) -> tuple[list[tuple[_Host[ItemT], ItemT]], float]:
        """Take every due poll of every host, up to each host's cap.

        Each taken poll counts as in flight at its host until it is fired and
        done. Returns the polls to fire, and when the loop should wake next.
        """
        horizon = now + TOLERANCE
        wake = math.inf
        due: list[tuple[_Host[ItemT], ItemT]] = []
        for host in self._hosts.values():
            if host.paused_until > now:
                if host.heap:
                    wake = min(wake, host.paused_until)
                continue
            heap = host.heap
            while heap and host.in_flight < self._cap and heap[0][0] <= horizon:
                item = heapq.heappop(heap)[2]
                if not item.polling:
                    continue
                host.in_flight += 1
                due.append((host, item))
            if heap and host.in_flight < self._cap:
                wake = min(wake, heap[0][0])
        self._next_wake = wake
        return due, wake

    async def run(self) -> None:
        """Run forever (until cancelled), firing due polls."""
        async with anyio.create_task_group() as tg:
            while True:
                if self._kick.is_set():  # a new event only after one was used
                    self._kick = anyio.Event()
                due, wake = self.tick(self._time.monotonic())
                if due:
                    self._ready.extend(due)
                    self._hand_out(tg)
                await self._time.wait(self._kick, wake)

    def _hand_out(self, tg: anyio.abc.TaskGroup) -> None:
        """Wake (or, when none waits, start) a worker for each poll nobody is coming for."""
        wanted = len(self._ready) - self._coming
        while wanted > 0 and self._idle:
            self._idle.pop().set()
            self._coming += 1
            wanted -= 1
        for _ in range(wanted):
            tg.start_soon(self._worker)
            self._coming += 1

    async def _worker(self) -> None:
        ready = self._ready
        while True:
            self._coming -= 1
            while ready:
                host, item = ready.popleft()
                polled: ItemT | None = item
                while polled is not None:
                    await self._run_one(polled)
                    if not polled.polling:  # it ended: its waiters run before the next poll
                        await anyio.lowlevel.checkpoint()
                    polled = self._next(host)
            woken = anyio.Event()
            self._idle.append(woken)
            await woken.wait()

    async def _run_one(self, item: ItemT) -> None:
        try:
            await self._fire(item)
        except Exception:
            # The poll owns its errors; this only keeps one bug from stopping
            # every other job.
            logger.exception("poll failed unexpectedly")

    def _next(self, host: _Host[ItemT]) -> ItemT | None:
        """Free the poll's slot at ``host``, and take the host's next due poll into it."""
        host.in_flight -= 1
        heap = host.heap
        if heap:
            now = self._time.monotonic()
            if host.paused_until <= now:
                horizon = now + TOLERANCE
                while heap and heap[0][0] <= horizon:
                    item = heapq.heappop(heap)[2]
                    if item.polling:
                        host.in_flight += 1
                        return item
            # A host at its cap gave the loop no deadline: a freed slot must
            # wake it for a head due before the loop's own next wake-up.
            if heap and heap[0][0] < self._next_wake:
                self._kick.set()
        return None
