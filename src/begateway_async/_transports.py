"""The HTTP transport under the Gateway: httpx's own, or an aiohttp-backed one on asyncio.

httpx spends about 0.6-3 ms of CPU per request here; aiohttp about 0.1 ms.
With the ``aiohttp`` extra installed (``httpx-aiohttp``), a Gateway on
asyncio sends through aiohttp and keeps the httpx API; on Trio, or without
the extra, it uses httpx's default transport.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
import sniffio

from ._errors import InvalidRequest

__all__ = ["HttpChoice", "HttpCore", "choose_transport"]

HttpChoice = Literal["auto", "httpx", "aiohttp"]


class _AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx-aiohttp's transport, with "not sent" kept for failures to connect only.

    httpx-aiohttp maps every ``aiohttp.ClientConnectionError`` to
    `httpx.ConnectTimeout`, including a server that hung up after the request
    was written. For a payment client "never sent" must be certain, so any
    such error whose cause was not a failure to connect becomes a
    `httpx.RemoteProtocolError` (the request may have arrived).
    """

    def __init__(self, limits: httpx.Limits) -> None:
        import aiohttp  # noqa: PLC0415 - an optional extra
        from httpx_aiohttp import AiohttpTransport  # noqa: PLC0415

        self._connect_errors: tuple[type[BaseException], ...] = (aiohttp.ClientConnectorError,)
        self._inner = AiohttpTransport(limits=limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through aiohttp."""
        try:
            return await self._inner.handle_async_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            if isinstance(exc.__cause__, self._connect_errors):
                raise
            raise httpx.RemoteProtocolError(
                str(exc) or type(exc).__name__, request=request
            ) from exc

    async def aclose(self) -> None:
        """Close aiohttp's session."""
        await self._inner.aclose()


def _aiohttp_available() -> bool:
    try:
        import httpx_aiohttp  # noqa: F401, PLC0415
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


class HttpCore:
    """What the Gateway needs of an HTTP client, sent straight through an httpx transport.

    `httpx.AsyncClient` adds URL merging, cookie jars, auth flows, redirects
    and event hooks on every request: about a third of the client's CPU per
    poll, for nothing this protocol uses (no cookies, no redirects, one fixed
    Basic credential). This keeps httpx's transports, `httpx.Request` and
    `httpx.Response`, the timeouts as request extensions, and httpx's errors.

    Args:
        transport: any `httpx.AsyncBaseTransport`.
        headers: sent on every request (``Authorization`` included).
        timeout: per-request timeouts.
    """

    __slots__ = ("_extensions", "_headers", "_transport")

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        headers: list[tuple[bytes, bytes]],
        timeout: httpx.Timeout,
    ) -> None:
        self._transport = transport
        self._headers = headers
        self._extensions = {"timeout": timeout.as_dict()}

    def __repr__(self) -> str:
        return f"<HttpCore {type(self._transport).__name__}>"

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
        """
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
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def aclose(self) -> None:
        """Close the transport and its connections."""
        await self._transport.aclose()
