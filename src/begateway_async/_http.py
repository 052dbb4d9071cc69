"""The HTTP core under the Gateway: one request, one bounded answer, whatever the server does.

`HttpCore` sends straight through an httpx transport (httpx's own, or the
aiohttp engine of `_transports`) and reads each answer within two bounds:

- **time**: `Timeouts.total` for the whole request, headers and body, on
  top of httpx's per-phase timeouts (a body that trickles one byte a second
  never ends otherwise);
- **size**: `Limits.max_answer_bytes` of the body as sent, and the same of
  it once a ``Content-Encoding`` (gzip, deflate) is undone, counted as it
  inflates: a small gzip bomb costs at most the cap, not the gigabyte it
  would inflate to.
"""

from __future__ import annotations

import base64
import contextlib
import zlib
from collections.abc import Callable
from typing import Final

import anyio
import httpx

from ._errors import GatewayStateError
from ._version import __version__

__all__ = [
    "MAX_ANSWER",
    "AnswerTooLarge",
    "HttpCore",
    "describe",
    "gateway_headers",
    "inflate",
    "not_sent",
]

#: The request extension that tells our transports how much of an answer to read.
MAX_ANSWER: Final = "begateway_async.max_answer_bytes"

#: Errors of a request that never left this machine: the gateway saw nothing.
_NOT_SENT: Final = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)

#: Headers of an answer that no longer hold once its body is read and inflated.
_BODY_HEADERS: Final = frozenset({b"content-encoding", b"content-length", b"transfer-encoding"})


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


def inflate(body: bytes, encoding: str, limit: int, request: httpx.Request) -> bytes:
    """Undo a ``Content-Encoding`` (gzip, deflate; in the order applied), at most ``limit`` bytes.

    Raises:
        AnswerTooLarge: it inflates to more than ``limit`` bytes (nothing more is inflated).
        httpx.DecodingError: not valid gzip or deflate, or another encoding.
    """
    for name in reversed([part.strip().lower() for part in encoding.split(",")]):
        if name in ("", "identity"):
            continue
        if name in ("gzip", "x-gzip"):
            body = _inflate(body, (16 + zlib.MAX_WBITS,), limit, request)
        elif name == "deflate":  # zlib-wrapped, as it should be, or raw, as some servers send
            body = _inflate(body, (zlib.MAX_WBITS, -zlib.MAX_WBITS), limit, request)
        else:
            raise httpx.DecodingError(f"unsupported Content-Encoding {name!r}", request=request)
    return body


def _inflate(body: bytes, formats: tuple[int, ...], limit: int, request: httpx.Request) -> bytes:
    for wbits in formats:
        try:
            out = zlib.decompressobj(wbits).decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit:
            raise AnswerTooLarge(limit, request)
        return out
    raise httpx.DecodingError("the answer's compressed body cannot be read", request=request)


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
        timeout: per-phase timeouts.
        total: seconds for the whole request, the body of the answer included.
        max_answer_bytes: the most of one answer that is read, and inflated.
    """

    __slots__ = ("_extensions", "_headers", "_limit", "_make", "_total", "_transport")

    def __init__(
        self,
        transport: Callable[[], httpx.AsyncBaseTransport],
        headers: list[tuple[bytes, bytes]],
        timeout: httpx.Timeout,
        total: float = 60.0,
        max_answer_bytes: int = 1 << 20,
    ) -> None:
        self._make = transport
        self._transport: httpx.AsyncBaseTransport | None = None
        self._headers = headers
        self._total = total
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
        """Send one request and read its whole answer, within `total` seconds and the cap.

        Raises:
            httpx.HTTPError: the transport's failure (connect, read, protocol, ...);
                `httpx.ReadTimeout` when the whole request took longer than `total`;
                `AnswerTooLarge` when the answer, sent or inflated, passes the cap.
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
        read: tuple[bytes, bool] | None = None
        with anyio.move_on_after(self._total):
            response = await transport.handle_async_request(request)
            try:
                read = await self._read(response, request)
            finally:
                with anyio.CancelScope(shield=True):  # a whole answer is kept, whatever comes
                    await response.aclose()
        if read is None:
            # Whatever was under way, the request may have reached the gateway.
            raise httpx.ReadTimeout(f"no whole answer within {self._total:g} s", request=request)
        body, raw = read
        encoding = response.headers.get("content-encoding")
        if encoding and raw:
            body = inflate(body, encoding, self._limit, request)
        return httpx.Response(
            response.status_code,
            headers=[(k, v) for k, v in response.headers.raw if k.lower() not in _BODY_HEADERS],
            content=body,
            request=request,
            extensions=response.extensions,
        )

    async def _read(self, response: httpx.Response, request: httpx.Request) -> tuple[bytes, bool]:
        """The body up to the cap, and whether it is as sent (True) or decoded already."""
        if response.is_stream_consumed:  # read and decoded by the transport (a mock, in tests)
            if len(response.content) > self._limit:
                raise AnswerTooLarge(self._limit, request)
            return response.content, False
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._limit:
            raise AnswerTooLarge(self._limit, request)
        chunks: list[bytes] = []
        size = 0
        reading = response.aiter_raw()
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
        return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), True

    async def aclose(self) -> None:
        """Close the transport and its connections; nothing is sent after this."""
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()
