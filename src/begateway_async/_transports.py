"""The engines under the Gateway: httpx's transports in small pools, or aiohttp's on asyncio.

With the ``aiohttp`` extra installed, a Gateway on asyncio sends through
`AiohttpEngine` (about 0.4 x httpx's client CPU per job here); on
Trio, or without the extra, through httpx's own transport. A transport a
user gives (``Gateway(transport=...)``: a mock, a proxy) is sent through as
it is, by `HttpxEngine`.
"""

from __future__ import annotations

from typing import Literal

import anyio
import httpx
import sniffio

from ._config import Limits, Timeouts
from ._errors import InvalidRequest
from ._http import Answer, Engine, Headers, read_capped
from ._slots import Slots

__all__ = ["POOL_SIZE", "HttpChoice", "HttpxEngine", "choose_engine", "make_engine"]

HttpChoice = Literal["auto", "httpx", "aiohttp"]

#: Connections per httpx pool. httpcore's pool walks every connection and
#: every waiting request on each request and answer: its CPU per request
#: grows with the pool and the queue (64 in flight on one pool of 80 costs
#: about 4 times 1 in flight here). Pools of this size, each with at most
#: this many requests in flight, keep the cost flat (3 measured flattest:
#: 436/378/450 µs at 1/64/512 in flight, against 468/431/575 for 4 and
#: 507/475/515 for 2, ``benchmarks/engines.py``).
POOL_SIZE = 3


class HttpxEngine:
    """An `Engine` over httpx transports: a user's one, or several small pools used in turn.

    With ``caps``, transport *i* has at most ``caps[i]`` requests in flight
    (its pool's size), and a request goes to the least busy one; when all
    are full it waits here, within the pool timeout (`httpx.PoolTimeout`,
    nothing sent), not in httpcore's queue. The caps must not grow along
    the list, nor differ by more than one (then the least busy transport is
    never a full one).

    Args:
        transports: the httpx transports to send through.
        timeout: per-phase timeouts, passed to the transport.
        total: seconds for the whole request, the body of the answer included.
        max_answer_bytes: the most of one answer that is read.
        caps: requests in flight per transport (None: no bound of ours).
    """

    def __init__(
        self,
        transports: list[httpx.AsyncBaseTransport],
        timeout: httpx.Timeout,
        total: float,
        max_answer_bytes: int,
        caps: list[int] | None = None,
    ) -> None:
        self._transports = transports
        self._busy = [0] * len(transports)
        self.caps = caps
        self._slots = Slots(sum(caps)) if caps is not None else None
        self._pool_timeout = timeout.pool
        self._extensions = {"timeout": timeout.as_dict()}
        self._total = total
        self._limit = max_answer_bytes

    def __repr__(self) -> str:
        return f"<HttpxEngine {len(self._transports)} x {type(self._transports[0]).__name__}>"

    async def send(self, method: str, url: str, headers: Headers, content: bytes | None) -> Answer:
        """Send one request through the least busy transport and read its whole answer.

        The total time starts once the request has a pool slot: the wait for
        one is bounded by the pool timeout alone (`httpx.PoolTimeout`).
        """
        if self._slots is None:
            return await self._send(0, method, url, headers, content)
        await self._acquire(method, url)
        try:
            busy = self._busy
            index = busy.index(min(busy))
            busy[index] += 1
            try:
                return await self._send(index, method, url, headers, content)
            finally:
                busy[index] -= 1
        finally:
            self._slots.release()

    async def _acquire(self, method: str, url: str) -> None:
        """A slot in some pool, within the pool timeout (else nothing was sent)."""
        assert self._slots is not None  # noqa: S101 - only with pools
        if not await self._slots.acquire(self._pool_timeout):
            raise httpx.PoolTimeout(
                "no connection free within the pool timeout", request=httpx.Request(method, url)
            )

    async def _send(
        self, index: int, method: str, url: str, headers: Headers, content: bytes | None
    ) -> Answer:
        request = httpx.Request(
            method, url, headers=headers, content=content, extensions=self._extensions
        )
        with anyio.move_on_after(self._total):
            response = await self._transports[index].handle_async_request(request)
            try:
                return await read_capped(response, request, self._limit)
            finally:
                with anyio.CancelScope(shield=True):  # a whole answer is kept, whatever comes
                    await response.aclose()
        # Whatever was under way, the request may have reached the gateway.
        raise httpx.ReadTimeout(f"no whole answer within {self._total:g} s", request=request)

    async def aclose(self) -> None:
        """Close every transport and its connections."""
        for transport in self._transports:
            await transport.aclose()


def _aiohttp_available() -> bool:
    try:
        import aiohttp  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def choose_engine(http: HttpChoice) -> Literal["httpx", "aiohttp"]:
    """The engine for ``http`` on the running event loop.

    Raises:
        InvalidRequest: ``"aiohttp"`` was asked for on Trio or without the extra.
    """
    if http == "httpx":
        return "httpx"
    on_asyncio = sniffio.current_async_library() == "asyncio"
    if http == "aiohttp":
        if not on_asyncio:
            raise InvalidRequest("http", "aiohttp runs on asyncio only")
        if not _aiohttp_available():
            raise InvalidRequest(
                "http", "install begateway-async[aiohttp] for the aiohttp transport"
            )
        return "aiohttp"
    return "aiohttp" if on_asyncio and _aiohttp_available() else "httpx"


def make_engine(
    http: HttpChoice,
    *,
    limits: Limits,
    timeouts: Timeouts,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Engine:
    """The engine for ``http`` (or for a user's ``transport``) on the running event loop."""
    t = timeouts
    timeout = httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool)
    total, max_answer_bytes = t.total, limits.max_answer_bytes
    max_connections = limits.max_connections
    if transport is not None:
        return HttpxEngine([transport], timeout, total, max_answer_bytes)
    if choose_engine(http) == "aiohttp":
        from ._aiohttp import AiohttpEngine  # noqa: PLC0415 - an optional extra

        pool = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        return AiohttpEngine(pool, timeout, total, max_answer_bytes)
    pools = max(1, max_connections // POOL_SIZE)
    # The connections spread over the pools, the larger pools first.
    caps = [max_connections // pools + (i < max_connections % pools) for i in range(pools)]
    transports: list[httpx.AsyncBaseTransport] = [
        httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=c, max_keepalive_connections=c)
        )
        for c in caps
    ]
    return HttpxEngine(transports, timeout, total, max_answer_bytes, caps=caps)
