"""Time, as the library sees it: epoch seconds for expiry, a monotonic line for scheduling.

`Gateway` takes ``clock``: either a plain callable returning epoch seconds
(it then judges only the 24 h expiry; scheduling keeps real monotonic time)
or a `SchedulingClock`, such as `begateway_async.testing.VirtualClock`, which
drives the whole client (backoff, timeouts, expiry) on virtual time.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import anyio
import sniffio

__all__ = ["SchedulingClock", "Timebase", "name_asyncio", "named", "unname"]


#: sniffio's override, which it reads before sniffing: anyio and httpcore ask
#: sniffio which library runs on nearly every call, and on asyncio, unless the
#: task names it here, each answer is a look-up of the running task (0.78 µs
#: against 0.15 here; a few dozen per request on the httpx engine).
_LIBRARY: contextvars.ContextVar[str | None] = sniffio.current_async_library_cvar


def name_asyncio() -> contextvars.Token[str | None] | None:
    """Name asyncio as this task's library for sniffio (and for the tasks it starts).

    Only on asyncio, and only where nothing named a library yet (Trio names
    itself per thread; a bridge such as trio-asyncio names its own). Returns
    the token that undoes it, or None when nothing was set.
    """
    if sniffio.thread_local.name is not None or _LIBRARY.get() is not None:
        return None
    if sniffio.current_async_library() != "asyncio":
        return None
    return _LIBRARY.set("asyncio")


async def named(run: Callable[[], Awaitable[None]]) -> None:
    """Run ``run`` with asyncio named (`name_asyncio`) for its task and the tasks it starts."""
    name_asyncio()
    await run()


def unname(token: contextvars.Token[str | None]) -> None:
    """Undo what `name_asyncio` set (in the task that set it)."""
    _LIBRARY.reset(token)


@runtime_checkable
class SchedulingClock(Protocol):
    """A clock that also tells the scheduler when to wake.

    ``wait(event, deadline)`` returns once ``event`` is set or the monotonic
    ``deadline`` has passed; it may set ``event`` itself on timeout, so
    callers pass an event of their own.
    """

    def __call__(self) -> float:
        """Return epoch seconds now."""
        ...

    def monotonic(self) -> float:
        """Return seconds on a line that never goes back."""
        ...

    async def wait(self, event: anyio.Event, deadline: float) -> None:
        """Wait until ``event`` is set or ``deadline`` (monotonic) has passed."""
        ...


class Timebase:
    """The time functions one Gateway uses, chosen once from its ``clock`` argument.

    On real time, `bind` (at open, in the running loop) replaces
    `anyio.current_time`, which looks the event loop up on every call, with
    the loop's own clock: the same time line, read for nothing.
    """

    __slots__ = ("_real", "monotonic", "time", "wait")

    def __init__(self, clock: Callable[[], float] | SchedulingClock | None) -> None:
        self._real = not isinstance(clock, SchedulingClock)
        if isinstance(clock, SchedulingClock):
            self.time: Callable[[], float] = clock
            self.monotonic: Callable[[], float] = clock.monotonic
            self.wait = clock.wait
        else:
            self.time = clock if clock is not None else time.time
            self.monotonic = anyio.current_time
            self.wait = self._real_wait

    def bind(self) -> None:
        """Read the running event loop's clock directly from now on (real time only)."""
        if not self._real:
            return
        if sniffio.current_async_library() == "asyncio":
            import asyncio  # noqa: PLC0415 - only on asyncio

            self.monotonic = asyncio.get_running_loop().time
        else:
            import trio  # noqa: PLC0415 - only on Trio

            self.monotonic = trio.current_time

    async def sleep(self, seconds: float) -> None:
        """Sleep on this time line (a fresh event nobody else sets)."""
        await self.wait(anyio.Event(), self.monotonic() + seconds)

    async def _real_wait(self, event: anyio.Event, deadline: float) -> None:
        if math.isinf(deadline):
            await event.wait()
            return
        with anyio.move_on_after(max(0.0, deadline - self.monotonic())):
            await event.wait()
