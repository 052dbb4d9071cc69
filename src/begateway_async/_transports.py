"""The HTTP transport under the Gateway: httpx's own, or an aiohttp-backed one on asyncio.

httpx spends about 0.6-3 ms of CPU per request here; aiohttp about 0.1 ms.
With the ``aiohttp`` extra installed, a Gateway on
asyncio sends through aiohttp and keeps the httpx API; on Trio, or without
the extra, it uses httpx's default transport.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable
from typing import Any, Final, Literal

import httpx
import sniffio

from ._errors import GatewayStateError, InvalidRequest
from ._version import __version__

__all__ = [
    "AnswerTooLarge",
    "HttpChoice",
    "HttpCore",
    "choose_transport",
    "describe",
    "gateway_headers",
    "make_transport",
    "not_sent",
]

HttpChoice = Literal["auto", "httpx", "aiohttp"]

#: The request extension that tells our transports how much of an answer to read.
MAX_ANSWER: Final = "begateway_async.max_answer_bytes"


#: Errors of a request that never left this machine: the gateway saw nothing.
_NOT_SENT: Final = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


def not_sent(exc: httpx.HTTPError) -> bool:
    """Whether ``exc`` says the request never left this machine (the gateway saw nothing)."""
    return isinstance(exc, _NOT_SENT)


def describe(exc: BaseException) -> str:
    """One line naming an error: its type, and its message when it has one."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class AnswerTooLarge(httpx.DecodingError):
    """An answer longer than `Limits.max_answer_bytes`; the rest of it was not read."""

    def __init__(self, limit: int, request: httpx.Request) -> None:
        super().__init__(f"the answer is longer than {limit} bytes", request=request)
        self.limit = limit


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
        return httpx.Response(
            answer.status,
            headers=list(answer.raw_headers),
            content=body,
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


def gateway_headers(
    shop_id: str, secret_key: str, api_version: int | None
) -> list[tuple[bytes, bytes]]:
    """The headers of every request to the gateway: HTTP Basic with the shop's credentials."""
    credentials = base64.b64encode(f"{shop_id}:{secret_key}".encode()).decode()
    headers = [
        (b"Accept", b"application/json"),
        (b"User-Agent", f"begateway-async/{__version__}".encode()),
        (b"Authorization", f"Basic {credentials}".encode()),
    ]
    if api_version is not None:
        headers.append((b"X-API-Version", str(api_version).encode()))
    return headers


class HttpCore:
    """What the Gateway needs of an HTTP client, sent straight through an httpx transport.

    `httpx.AsyncClient` adds URL merging, cookie jars, auth flows, redirects
    and event hooks on every request: about a third of the client's CPU per
    poll, for nothing this protocol uses (no cookies, no redirects, one fixed
    Basic credential). This keeps httpx's transports, `httpx.Request` and
    `httpx.Response`, the timeouts as request extensions, and httpx's errors.

    It is made before the event loop runs, and opened in it (`open`: the
    engine is chosen for the running loop); it sends nothing before that,
    nor after `aclose`.

    Args:
        transport: makes the `httpx.AsyncBaseTransport` to send through, at `open`.
        headers: sent on every request (``Authorization`` included).
        timeout: per-request timeouts.
        max_answer_bytes: the most of one answer that is read.
    """

    __slots__ = ("_extensions", "_headers", "_limit", "_make", "_transport")

    def __init__(
        self,
        transport: Callable[[], httpx.AsyncBaseTransport],
        headers: list[tuple[bytes, bytes]],
        timeout: httpx.Timeout,
        max_answer_bytes: int = 1 << 20,
    ) -> None:
        self._make = transport
        self._transport: httpx.AsyncBaseTransport | None = None
        self._headers = headers
        self._limit = max_answer_bytes
        self._extensions = {"timeout": timeout.as_dict(), MAX_ANSWER: max_answer_bytes}

    def __repr__(self) -> str:
        engine = type(self._transport).__name__ if self._transport is not None else "closed"
        return f"<HttpCore {engine}>"

    def open(self) -> None:
        """Make the transport (in the running event loop)."""
        self._transport = self._make()

    async def request(
        self,
        method: str,
        url: httpx.URL,
        *,
        content: bytes | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> httpx.Response:
        """Send one request and read its whole answer.

        Raises:
            httpx.HTTPError: the transport's failure (connect, read, protocol, ...).
            GatewayStateError: the core is not open (the Gateway closed first).
        """
        transport = self._transport
        if transport is None:
            raise GatewayStateError("the Gateway is closed; nothing was sent", state="closed")
        if headers:
            own = {name.lower() for name, _ in headers}  # a request's own headers win
            headers = [h for h in self._headers if h[0].lower() not in own] + headers
        request = httpx.Request(
            method,
            url,
            headers=headers or self._headers,
            content=content,
            extensions=self._extensions,
        )
        response = await transport.handle_async_request(request)
        response.request = request
        try:
            if isinstance(response.stream, httpx.ByteStream):  # read already (our aiohttp)
                await response.aread()
                if len(response.content) > self._limit:
                    raise AnswerTooLarge(self._limit, request)
                return response
            return await self._read_capped(response, request)
        finally:
            await response.aclose()

    async def _read_capped(
        self, response: httpx.Response, request: httpx.Request
    ) -> httpx.Response:
        """Read a streamed answer up to the limit (decoded bytes: no decompression bombs)."""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._limit:
            raise AnswerTooLarge(self._limit, request)
        chunks: list[bytes] = []
        size = 0
        reading = response.aiter_bytes()
        async for chunk in reading:
            size += len(chunk)
            if size > self._limit:
                # Close the connection, then let the readers run into it and
                # end, rather than leaving them suspended for the collector.
                await response.aclose()
                with contextlib.suppress(Exception):
                    async for _ in reading:
                        pass
                raise AnswerTooLarge(self._limit, request)
            chunks.append(chunk)
        headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"content-encoding"]
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=b"".join(chunks),
            request=request,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close the transport and its connections; nothing is sent after this."""
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()
