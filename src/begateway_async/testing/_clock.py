"""`VirtualClock`: virtual time for the client (and the simulator) in tests.

Pass one as ``Gateway(..., clock=clock)``: backoff, timeouts and the 24 h
expiry then run on virtual time, which moves only when the test says so
(`VirtualClock.advance`) or, inside `VirtualClock.autojump`, whenever every
task is blocked, jumping straight to the next deadline. Twenty-four hours
pass in a microsecond and nothing sleeps for real.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import sniffio

__all__ = ["VirtualClock"]

#: 2026-01-01T00:00:00Z: a fixed, recognisable start of virtual epoch time.
DEFAULT_EPOCH = 1_767_225_600.0


class _Timer:
    __slots__ = ("active", "deadline", "event")

    def __init__(self, deadline: float, event: anyio.Event) -> None:
        self.deadline = deadline
        self.event = event
        self.active = True

    def __lt__(self, other: _Timer) -> bool:
        return self.deadline < other.deadline


class VirtualClock:
    """A clock whose time moves only when told to.

    Calling it returns epoch seconds (``start`` plus the virtual time elapsed);
    `monotonic` returns the elapsed seconds. It implements
    `begateway_async.SchedulingClock`.

    Args:
        start: epoch seconds at virtual time zero.
    """

    def __init__(self, start: float = DEFAULT_EPOCH) -> None:
        self._start = start
        self._now = 0.0
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self._new_timer: anyio.Event | None = None

    def __call__(self) -> float:
        """Return virtual epoch seconds."""
        return self._start + self._now

    def monotonic(self) -> float:
        """Return the virtual seconds elapsed since the clock was made."""
        return self._now

    async def wait(self, event: anyio.Event, deadline: float) -> None:
        """Wait until ``event`` is set or virtual time reaches ``deadline``.

        On timeout the clock sets ``event`` itself.
        """
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        if math.isinf(deadline):  # no deadline: nothing for time to jump to
            await event.wait()
            return
        timer = _Timer(deadline, event)
        heapq.heappush(self._timers, (deadline, next(self._seq), timer))
        if self._new_timer is not None:
            self._new_timer.set()
        try:
            await event.wait()
        finally:
            timer.active = False

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of virtual time."""
        await self.wait(anyio.Event(), self._now + seconds)

    def _next_deadline(self) -> float | None:
        while self._timers and not self._timers[0][2].active:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def _jump(self, to: float) -> None:
        self._now = max(self._now, to)
        while self._timers and self._timers[0][0] <= self._now:
            timer = heapq.heappop(self._timers)[2]
            if timer.active:
                timer.active = False
                timer.event.set()

    async def jump(self, seconds: float) -> None:
        """Move time forward by ``seconds`` at once, as a machine waking from suspend sees it.

        Every sleeper due by then wakes at the new time, none on the way.
        """
        self._jump(self._now + seconds)
        await settle()

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking each sleeper at its deadline in order.

        Between two deadlines every task runs until it blocks, so a poll that
        falls due on the way is made (and answered) at its own virtual time.
        """
        target = self._now + seconds
        await settle()
        while (deadline := self._next_deadline()) is not None and deadline <= target:
            self._jump(deadline)
            await settle()
        self._now = max(self._now, target)
        await settle()

    @asynccontextmanager
    async def autojump(self) -> AsyncIterator[VirtualClock]:
        """Within this block, jump to the next deadline whenever every task is blocked.

        Use it to run a whole scenario (hours of backoff, the 24 h expiry) at
        once: ``await job`` then returns as soon as the work is done.
        """
        tg = anyio.create_task_group()
        await tg.__aenter__()
        tg.start_soon(self._autojump)
        try:
            yield self
        finally:
            tg.cancel_scope.cancel()
            # The group holds only the jumper: an exception of the block
            # propagates as it is, not wrapped in an exception group.
            await tg.__aexit__(None, None, None)

    async def _autojump(self) -> None:
        while True:
            await settle()
            deadline = self._next_deadline()
            if deadline is None:
                self._new_timer = anyio.Event()
                await self._new_timer.wait()
                self._new_timer = None
                continue
            self._jump(deadline)


async def settle() -> None:
    """Return once every other task of the event loop is blocked.

    Only meaningful when nothing waits on real I/O (an in-process transport).
    """
    if sniffio.current_async_library() == "trio":
        import trio.testing  # noqa: PLC0415 - trio is optional

        await trio.testing.wait_all_tasks_blocked()
        return
    import asyncio  # noqa: PLC0415

    this = asyncio.current_task()
    while True:
        await asyncio.sleep(0)
        for task in asyncio.all_tasks():
            if task is this:
                continue
            # The same test anyio's own wait_all_tasks_blocked makes: a task
            # is runnable when it waits on nothing or on a finished future.
            waiter = task._fut_waiter  # type: ignore[attr-defined]  # noqa: SLF001
            if waiter is None or waiter.done():
                break
        else:
            return
