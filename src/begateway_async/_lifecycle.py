"""`Lifecycle`: a Gateway's life, new → open → closed, and its parts' start and stop.

Opening joins the shared journal (if any), binds the clock, opens the HTTP
core and starts the library's loops (polls, heartbeat, wake-ups) in one task
group. Closing waits for the pending jobs (when draining), stops the loops
and closes the parts in the reverse order, shielded from cancellation. While
it drains the Gateway is still open (a notification may end a pending job; a
job's callback may submit the next step); a second ``aclose`` meanwhile waits
for the first.
"""

from __future__ import annotations

import math
from typing import Literal

import anyio
import anyio.abc

from ._clock import Timebase, named
from ._errors import GatewayStateError
from ._http import HttpCore
from ._journal import Journal
from ._sharing import Sharing
from ._tracker import Tracker

__all__ = ["Lifecycle", "State"]

State = Literal["new", "open", "closed"]


class Lifecycle:
    """Opens and closes a Gateway's parts, once each, in order.

    Args:
        timebase: the Gateway's clock, bound to the running loop at open.
        http: the HTTP core.
        tracker: the pending jobs and the poll loop.
        sharing: the worker side on a shared journal, or None.
        journal: the journal, closed at the end when ``owns_journal``.
        owns_journal: whether the Gateway made the journal (from a path or DSN).
    """

    def __init__(
        self,
        *,
        timebase: Timebase,
        http: HttpCore,
        tracker: Tracker,
        sharing: Sharing | None,
        journal: Journal,
        owns_journal: bool,
    ) -> None:
        self.state: State = "new"
        self._timebase = timebase
        self._http = http
        self._tracker = tracker
        self._sharing = sharing
        self._journal = journal
        self._owns_journal = owns_journal
        self._tg: anyio.abc.TaskGroup | None = None
        self._closing = False
        self._closed = anyio.Event()
        self._opener: int | None = None

    async def open(self, *, explicit: bool = False) -> None:
        """Start the parts; ``explicit`` for `Gateway.open` (not ``async with``).

        Raises:
            GatewayStateError: open already, closed, or (explicit) under a deadline.
        """
        if self.state != "new":
            raise GatewayStateError(
                "this Gateway is already open"
                if self.state == "open"
                else "this Gateway was closed: a Gateway opens once; make a new one",
                state=self.state,
            )
        if explicit and anyio.current_effective_deadline() != math.inf:
            # Its loops would run in a task group inside that scope, which then closes first.
            raise GatewayStateError(
                "Gateway.open() under a deadline (anyio.fail_after, move_on_after): the Gateway "
                "would outlive it; open it outside, or use `async with gateway:` inside it",
                state=self.state,
            )
        if self._sharing is not None:
            try:
                await self._sharing.join()  # a journal it cannot reach: nothing opened yet
            except BaseException:
                if self._owns_journal:
                    with anyio.CancelScope(shield=True):
                        await self._journal.aclose()
                raise
        self._timebase.bind()
        self._http.open()
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg, self._opener = tg, anyio.get_current_task().id
        tg.start_soon(named, self._tracker.run)  # the polls' tasks: asyncio named once
        if self._sharing is not None:
            tg.start_soon(named, self._sharing.run)
        self.state = "open"

    async def close(self, *, drain: bool, failed: bool = False) -> None:
        """Stop the loops and close the parts; ``failed`` when leaving on an exception.

        Closing twice at once: the second waits for the first. Closing what
        never opened, or is closed, does nothing.

        Raises:
            GatewayStateError: another task than the one that opened it starts the close.
        """
        if self._closing:
            await self._closed.wait()
            return
        if self._tg is None:
            return
        if anyio.get_current_task().id != self._opener:
            raise GatewayStateError(
                "close the Gateway from the task that opened it (its loops run in that task's "
                "task group); another task's aclose() waits only for a close under way",
                state=self.state,
            )
        tg, self._closing = self._tg, True
        try:
            if drain and not failed:
                await self._tracker.registry.drained()
        finally:
            self.state = "closed"
            tg.cancel_scope.cancel()
            try:
                # The group holds only the library's loops (polls, heartbeat, wake-ups):
                # the caller's own exception, if any, propagates as it is, not wrapped.
                await tg.__aexit__(None, None, None)
            finally:
                self._tg = None
                with anyio.CancelScope(shield=True):
                    try:
                        self._tracker.close()  # a done callback raising must not stop the rest
                    finally:
                        await self._close_parts()

    async def _close_parts(self) -> None:
        try:
            await self._http.aclose()
            if self._sharing is not None:
                await self._sharing.leave()
            if self._owns_journal:
                await self._journal.aclose()
        finally:
            self._closed.set()

    def check_open(self) -> None:
        """Raise unless open (what the Gateway's methods check before sending).

        Raises:
            GatewayStateError: not open yet, or closed.
        """
        if self.state == "open":
            return
        if self.state == "new":
            raise GatewayStateError(
                "use the Gateway as `async with Gateway(...) as gw:` first", state="new"
            )
        raise GatewayStateError(
            "this Gateway is closed; nothing was sent (a Gateway opens once: make a new one)",
            state=self.state,
        )
