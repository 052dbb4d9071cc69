"""The aiohttp engine: one `aiohttp.ClientSession` on asyncio, with no httpx object per request.

On this machine it costs about 0.4 x httpx's client CPU per job (see
``benchmarks/engines.py``). The answer is read whole within the cap (this
protocol's answers are small JSON bodies) and returned as an `Answer`.

Failures map to httpx's errors so that "nothing was sent" stays exact:
only a failure to connect (or to get a pooled connection in time) becomes
`httpx.ConnectError`, `httpx.ConnectTimeout` or `httpx.PoolTimeout`. Any
failure after the request may have been written (a hang-up, a reset, a
broken answer, the total time) is a `httpx.ReadError`, `httpx.ReadTimeout`
or `httpx.RemoteProtocolError`: the request may have arrived.
"""

from __future__ import annotations

from typing import Any

import httpx

from ._http import Answer, AnswerTooLarge, Headers

__all__ = ["AiohttpEngine"]


class AiohttpEngine:
    """An `Engine` sending through one `aiohttp.ClientSession`, opened at the first request.

    Args:
        limits: ``max_connections`` and ``keepalive_expiry`` of the pool.
        timeout: per-phase timeouts (connect, read, pool).
        total: seconds for the whole request, the body of the answer included.
        max_answer_bytes: the most of one answer that is read.
    """

    def __init__(
        self, limits: httpx.Limits, timeout: httpx.Timeout, total: float, max_answer_bytes: int
    ) -> None:
        import aiohttp  # noqa: PLC0415 - an optional extra

        self._aiohttp = aiohttp
        # The first match wins: the connect-side errors first (nothing was sent).
        self._errors: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
            (aiohttp.ClientConnectorError, httpx.ConnectError),
            (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
            (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
            (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
            (TimeoutError, httpx.ReadTimeout),
            (aiohttp.ClientPayloadError, httpx.ReadError),
            (aiohttp.ClientOSError, httpx.ReadError),
            (aiohttp.ClientError, httpx.RemoteProtocolError),
        )
        self._limits = limits
        # aiohttp's total covers the whole request, reading the body included.
        # aiohttp re-arms its read timer on every chunk (a third of its timer
        # work per request): armed only when it can fire before the total.
        read = timeout.read if timeout.read is not None and timeout.read < total else None
        self._timeout = aiohttp.ClientTimeout(
            total=total, connect=timeout.pool, sock_connect=timeout.connect, sock_read=read
        )
        self._total = total
        self._limit = max_answer_bytes
        self._session: Any = None

    def __repr__(self) -> str:
        return f"<AiohttpEngine {'open' if self._session is not None else 'idle'}>"

    def _open(self) -> Any:
        aiohttp = self._aiohttp
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            keepalive_timeout=self._limits.keepalive_expiry,
            ssl=httpx.create_ssl_context(),  # httpx's trust store on both engines
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # the core inflates, within the cap
            # No skip_auto_headers (its slow path sorts a set per request): the
            # gateway headers name User-Agent, Accept and Accept-Encoding, and
            # every request with a body its Content-Type.
            timeout=self._timeout,
        )
        return self._session

    async def send(self, method: str, url: str, headers: Headers, content: bytes | None) -> Answer:
        """Send one request through aiohttp and read its whole answer."""
        session = self._session or self._open()
        try:
            async with session.request(
                method, url, headers=headers, data=content, allow_redirects=False
            ) as answer:
                return Answer(answer.status, answer.headers, await self._read(answer), encoded=True)
        except AnswerTooLarge:
            raise
        except Exception as exc:
            raise self._mapped(exc, method, url) from exc

    async def _read(self, answer: Any) -> bytes:
        """The whole body, or `AnswerTooLarge` as soon as it passes the cap."""
        length = answer.content_length
        if length is not None:
            if length > self._limit:
                raise AnswerTooLarge(self._limit)
            return bytes(await answer.read())  # the parser stops at the declared length
        chunks: list[bytes] = []
        size = 0
        async for chunk in answer.content.iter_any():
            size += len(chunk)
            if size > self._limit:
                raise AnswerTooLarge(self._limit)
            chunks.append(chunk)
        return b"".join(chunks)

    def _mapped(self, exc: Exception, method: str, url: str) -> Exception:
        """The httpx error for an aiohttp failure; anything after sending may have arrived."""
        for aiohttp_error, httpx_error in self._errors:
            if isinstance(exc, aiohttp_error):
                message = str(exc) or type(exc).__name__
                if isinstance(exc, self._aiohttp.ClientConnectorError):
                    # aiohttp's own text names "ssl:default" even for plain http.
                    cause = getattr(exc, "os_error", None) or exc.__cause__
                    reason = f"{type(cause).__name__}: {cause}" if cause else "failed"
                    message = f"cannot connect to {exc.host}:{exc.port} ({reason})"
                if httpx_error is httpx.ReadTimeout and not str(exc):
                    message = f"no whole answer within {self._total:g} s"
                return httpx_error(message, request=_request(method, url))
        return exc

    async def aclose(self) -> None:
        """Close aiohttp's session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _request(method: str, url: str) -> httpx.Request | None:
    """The httpx request an error names (None for a URL httpx cannot take either)."""
    try:
        return httpx.Request(method, url)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        return None
