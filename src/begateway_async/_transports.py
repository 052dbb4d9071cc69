"""The HTTP transport under the Gateway: httpx's own, or an aiohttp-backed one on asyncio.

httpx spends about 0.6-3 ms of CPU per request here; aiohttp about 0.1 ms.
With the ``aiohttp`` extra installed, a Gateway on
asyncio sends through aiohttp and keeps the httpx API; on Trio, or without
the extra, it uses httpx's default transport.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
import sniffio

from ._errors import InvalidRequest
from ._http import MAX_ANSWER, AnswerTooLarge

__all__ = ["HttpChoice", "choose_transport", "make_transport"]

HttpChoice = Literal["auto", "httpx", "aiohttp"]


class _AiohttpTransport(httpx.AsyncBaseTransport):
    """An `httpx.AsyncBaseTransport` that sends through one `aiohttp.ClientSession`.

    httpx's API stays (`httpx.Request` in, `httpx.Response` out, httpx's
    errors and timeouts); aiohttp does the I/O at about a sixth of httpx's
    CPU per request here. The answer is read whole before it is returned
    (this protocol's answers are small JSON bodies), which skips wrapping
    aiohttp's stream in httpx's.

    Failures map to httpx's errors so that "nothing was sent" stays exact:
    only a failure to connect (or to get a pooled connection in time)
    becomes `httpx.ConnectError`, `httpx.ConnectTimeout` or
    `httpx.PoolTimeout`. Any failure after the request may have been
    written (a hang-up, a reset, a broken answer) is a `httpx.ReadError`,
    `httpx.ReadTimeout` or `httpx.RemoteProtocolError`: the request may
    have arrived.
    """

    def __init__(self, limits: httpx.Limits) -> None:
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
        self._session: Any = None
        self._timeouts: dict[tuple[Any, ...], Any] = {}

    def _open(self) -> Any:
        aiohttp = self._aiohttp
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            keepalive_timeout=self._limits.keepalive_expiry,
            ssl=httpx.create_ssl_context(),  # httpx's trust store on both engines
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # httpx decodes, as on its own transport
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        return self._session

    def _timeout(self, timeout: dict[str, float | None]) -> Any:
        key = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
        found = self._timeouts.get(key)
        if found is None:
            connect, read, pool = key
            found = self._timeouts[key] = self._aiohttp.ClientTimeout(
                total=None, connect=pool, sock_connect=connect, sock_read=read
            )
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through aiohttp and read the whole answer."""
        session = self._session or self._open()
        try:
            async with session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=request.content or None,
                allow_redirects=False,
                timeout=self._timeout(request.extensions.get("timeout", {})),
            ) as answer:
                body = await self._read(answer, request)
        except AnswerTooLarge:
            raise
        except Exception as exc:
            raise self._mapped(exc, request) from exc
        # As a stream, not ``content=``: httpx would undo a Content-Encoding at
        # once, whole (a gzip bomb); the core inflates within the cap instead.
        return httpx.Response(
            answer.status,
            headers=list(answer.raw_headers),
            stream=httpx.ByteStream(body),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    @staticmethod
    async def _read(answer: Any, request: httpx.Request) -> bytes:
        """The whole body, or `AnswerTooLarge` as soon as it passes the request's limit."""
        limit = request.extensions.get(MAX_ANSWER)
        if limit is None:
            return bytes(await answer.read())
        if answer.content_length is not None and answer.content_length > limit:
            raise AnswerTooLarge(limit, request)
        chunks: list[bytes] = []
        size = 0
        async for chunk in answer.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise AnswerTooLarge(limit, request)
            chunks.append(chunk)
        return b"".join(chunks)

    def _mapped(self, exc: Exception, request: httpx.Request) -> Exception:
        """The httpx error for an aiohttp failure; anything after sending may have arrived."""
        for aiohttp_error, httpx_error in self._errors:
            if isinstance(exc, aiohttp_error):
                return httpx_error(str(exc) or type(exc).__name__, request=request)
        return exc

    async def aclose(self) -> None:
        """Close aiohttp's session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _aiohttp_available() -> bool:
    try:
        import aiohttp  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def choose_transport(http: HttpChoice, limits: httpx.Limits) -> Any:
    """The transport for ``http`` on the running event loop (None: httpx's default).

    Raises:
        InvalidRequest: ``"aiohttp"`` was asked for on Trio or without the extra.
    """
    if http == "httpx":
        return None
    on_asyncio = sniffio.current_async_library() == "asyncio"
    if http == "aiohttp":
        if not on_asyncio:
            raise InvalidRequest("http", "aiohttp runs on asyncio only")
        if not _aiohttp_available():
            raise InvalidRequest(
                "http", "install begateway-async[aiohttp] for the aiohttp transport"
            )
        return _AiohttpTransport(limits)
    if on_asyncio and _aiohttp_available():
        return _AiohttpTransport(limits)
    return None


def make_transport(http: HttpChoice, max_connections: int) -> httpx.AsyncBaseTransport:
    """The engine for ``http`` on the running event loop, with a pool of ``max_connections``."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    chosen: httpx.AsyncBaseTransport | None = choose_transport(http, limits)
    return chosen or httpx.AsyncHTTPTransport(limits=limits)
