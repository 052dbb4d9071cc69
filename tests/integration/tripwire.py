"""A simulator that counts the results it serves, for tests that kill a run part-way."""

from __future__ import annotations

import math
import threading

from begateway_async.testing import Simulator

__all__ = ["Tripwire"]


class Tripwire:
    """The simulator, counting the results it serves: `tripped` is set once `arm`'s count is.

    The test waits on that event (the server runs in a thread), never on a
    sleep loop.
    """

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self.tripped = threading.Event()
        self._at = math.inf
        self._served = 0

    def arm(self, count: int) -> None:
        """Set `tripped` once ``count`` results in all were served (at once if they were)."""
        self.tripped.clear()
        self._at = count
        if self._served >= count:
            self.tripped.set()

    async def __call__(self, scope, receive, send) -> None:
        """Serve as the simulator does, counting the results served."""
        path = scope.get("path", "") if scope["type"] == "http" else ""

        async def counting(message) -> None:
            start = message["type"] == "http.response.start"
            if start and path.startswith("/async/result/") and message["status"] == 200:
                self._served += 1
                if self._served >= self._at:
                    self.tripped.set()
            await send(message)

        await self.simulator(scope, receive, counting)
