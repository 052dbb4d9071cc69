"""`Link`: one PostgreSQL connection of its own, outside the pool (the listener's, the heartbeat's).

A link connects when first used, and again after a failure: any error
closes the connection, so the next use starts afresh. Its connections
carry TCP keepalives and a user timeout, so a connection whose peer is
gone (a half-open socket: the server's host died, a firewall forgot the
flow) fails within seconds instead of waiting forever.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["Link", "LinkClosed", "connect_options"]

T = TypeVar("T")


class LinkClosed(Exception):  # noqa: N818 - names what happened
    """The link was closed: it connects no more."""


def connect_options(connect_timeout: float, dead_after: float) -> dict[str, Any]:
    """The options of a connection: its connect timeout; a dead peer noticed in ``dead_after``."""
    idle = max(1, math.floor(dead_after / 3))
    return {
        # libpq counts whole seconds, and 0 would mean no limit at all.
        "connect_timeout": max(1, math.ceil(connect_timeout)),
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": idle,
        "keepalives_count": 2,
        # Data sent and not acknowledged for this long ends the connection.
        "tcp_user_timeout": max(1000, math.ceil(dead_after * 1000)),
    }


class Link:
    """One connection, used by one thread at a time.

    Args:
        connect: opens a connection (autocommit).
        setup: statements run on each new connection (e.g. ``LISTEN``).
    """

    def __init__(self, connect: Callable[[], Any], setup: Sequence[str] = ()) -> None:
        self._connect = connect
        self._setup = tuple(setup)
        self._lock = threading.Lock()
        self._connection: Any = None
        self._closed = False

    @property
    def connected(self) -> bool:
        """Whether a connection is open now."""
        return self._connection is not None

    def use(self, work: Callable[[Any], T]) -> tuple[T, bool]:
        """Run ``work`` on the connection; return its result, and whether it connected just now.

        Raises:
            LinkClosed: the link was closed.
        """
        with self._lock:
            fresh = self._connection is None
            if fresh:
                if self._closed:
                    raise LinkClosed
                connection = self._connect()
                try:
                    for statement in self._setup:
                        connection.execute(statement)
                except BaseException:
                    connection.close()
                    raise
                self._connection = connection
            try:
                return work(self._connection), fresh
            except BaseException:
                self._drop()
                raise

    def _drop(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.close()

    def open(self) -> None:
        """Let the link connect again (after `close`)."""
        with self._lock:
            self._closed = False

    def close(self) -> None:
        """Close the connection (after the use under way, if any); connect no more until `open`."""
        with self._lock:
            self._closed = True
            self._drop()
