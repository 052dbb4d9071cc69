"""`Database`: a `PostgresJournal`'s connections, the threads they run in, and their errors.

psycopg 3's synchronous API runs in worker threads, under the journal's own
capacity limiter, as `SQLiteJournal` runs `sqlite3`: the only set-up that
works under asyncio and Trio alike (psycopg's async connection and asyncpg
need an asyncio loop). Transactions go through a pool; the listener and the
heartbeat each have a `Link` of their own, so a busy pool holds neither up.
Every error a driver raises leaves here as a `JournalError` naming the host,
port and database — never the password.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio

from ._errors import InvalidRequest
from ._pglink import Link, LinkClosed, connect_options
from ._records import JournalError

__all__ = ["Database"]

T = TypeVar("T")


def _psycopg() -> Any:
    try:
        import psycopg  # noqa: PLC0415 - an optional extra
        import psycopg_pool  # noqa: PLC0415
    except ImportError:
        raise JournalError(
            'PostgresJournal needs psycopg: pip install "begateway-async[postgres]"'
        ) from None
    return psycopg, psycopg_pool


class Database:
    """One PostgreSQL database, as a journal uses it.

    Args:
        dsn: a libpq connection string or URL; read (not connected) at once.
        pool_size: connections of the pool (and worker threads) at most.
        connect_timeout: seconds to wait for a connection before failing.
        dead_after: seconds after which a connection whose peer is gone fails.
        migrate: brings the schema up to date, on the pool's first connection.

    Raises:
        InvalidRequest: ``dsn`` is not a connection string libpq can read.
    """

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int,
        connect_timeout: float,
        dead_after: float,
        migrate: Callable[[Any], None],
    ) -> None:
        self.where = _where(dsn)
        self._dsn = dsn
        self._pool_size = pool_size
        self._connect_timeout = float(connect_timeout)
        self._options = connect_options(connect_timeout, dead_after)
        self._migrate = migrate
        self._limiter = anyio.CapacityLimiter(pool_size)
        self._pool: Any = None
        self._pool_lock = threading.Lock()
        #: Transactions run on the pool (each one round trip or a few, one commit).
        self.transactions = 0

    def link(self, setup: Sequence[str] = ()) -> Link:
        """A connection of its own (``setup`` run on each new one)."""
        return Link(self._connect, setup)

    def _connect(self) -> Any:
        psycopg, _ = _psycopg()
        return psycopg.connect(self._dsn, autocommit=True, **self._options)

    def _connection_pool(self) -> Any:
        with self._pool_lock:
            if self._pool is None:
                _, psycopg_pool = _psycopg()
                pool = psycopg_pool.ConnectionPool(
                    self._dsn,
                    min_size=1,
                    max_size=self._pool_size,
                    open=False,
                    timeout=self._connect_timeout,
                    kwargs={"autocommit": True, **self._options},
                )
                try:
                    pool.open(wait=True, timeout=self._connect_timeout)
                    with pool.connection() as connection:
                        self._migrate(connection)
                except BaseException:
                    pool.close()
                    raise
                self._pool = pool
            return self._pool

    def _transaction(self, work: Callable[[Any], T]) -> T:
        with self._connection_pool().connection() as connection, connection.transaction():
            return work(connection)

    @property
    def started(self) -> bool:
        """Whether the pool is open."""
        return self._pool is not None

    async def run(self, work: Callable[[Any], T]) -> T:
        """``work`` in one transaction on a pooled connection, in a worker thread."""
        self.transactions += 1
        try:
            return await anyio.to_thread.run_sync(self._transaction, work, limiter=self._limiter)
        except JournalError:
            raise
        except Exception as exc:  # noqa: BLE001 - psycopg's errors, the pool's timeout
            raise self.error(exc) from None

    async def on_link(self, link: Link, work: Callable[[Any], T]) -> tuple[T, bool]:
        """Run ``work`` on ``link``, in a thread; its result, and whether it connected now."""
        try:
            return await anyio.to_thread.run_sync(link.use, work, abandon_on_cancel=True)
        except LinkClosed:
            raise JournalError("this journal is closed") from None
        except Exception as exc:  # noqa: BLE001 - psycopg's errors
            raise self.error(exc) from None

    def error(self, exc: BaseException) -> JournalError:
        """A driver's error as a `JournalError` on one line (psycopg's carry no password)."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        return JournalError(f"PostgreSQL at {self.where}: {type(exc).__name__}: {text}")

    async def aclose(self) -> None:
        """Close the pool (what it committed stays)."""
        await anyio.to_thread.run_sync(self.close)

    def close(self) -> None:
        """Close the pool now (blocks while a connection is in use)."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None


def _where(dsn: str) -> str:
    """``host:port/dbname`` of a DSN, never its password.

    Raises:
        InvalidRequest: libpq cannot read it (its message is not repeated:
            it may quote the DSN, password included).
    """
    try:
        from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415 - an optional extra
    except ImportError:
        return "<the given DSN>"  # said when first used: psycopg is missing
    try:
        info = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - its message may carry the password
        raise InvalidRequest(
            "dsn", "is not a connection string libpq can read (key=value pairs, or a URL)"
        ) from None
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
