"""The HTTP core under the Gateway: one request, one bounded answer, whatever the server does.

`HttpCore` sends through an `Engine` (`_transports`: httpx's transports, in
a few small pools, or aiohttp's session on asyncio) and gets each answer
whole within two bounds:

- **time**: `Timeouts.total` for the whole request, headers and body, on
  top of the per-phase timeouts (a body that trickles one byte a second
  never ends otherwise);
- **size**: `Limits.max_answer_bytes` of the body as sent, and the same of
  it once a ``Content-Encoding`` (gzip, deflate) is undone, counted as it
  inflates: a small gzip bomb costs at most the cap, not the gigabyte it
  would inflate to.

An answer is an `Answer` (status, headers, body), not an `httpx.Response`:
building httpx's objects around every poll cost a fifth of the client's CPU
on the aiohttp engine. Failures stay httpx's errors, on both engines.
"""

from __future__ import annotations

import base64
import contextlib
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Protocol

import httpx

from ._clock import Timebase, name_asyncio, unname
from ._errors import GatewayStateError
from ._observe import Observer
from ._version import __version__

__all__ = [
    "Answer",
    "AnswerTooLarge",
    "Engine",
    "Headers",
    "HttpCore",
    "describe",
    "gateway_headers",
    "inflate",
    "not_sent",
    "read_capped",
]

#: Request headers, as (name, value) pairs.
Headers = Sequence[tuple[str, str]]

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

    def __init__(self, limit: int, request: httpx.Request | None = None) -> None:
        super().__init__(f"the answer is longer than {limit} bytes", request=request)
        self.limit = limit


class Answer:
    """One whole answer of the gateway: its status, its headers and its body.

    ``headers`` is the engine's own case-insensitive mapping; ``content`` is
    the body as sent, until `HttpCore` undoes its ``Content-Encoding``.
    """

    __slots__ = ("content", "encoded", "headers", "status_code")

    def __init__(
        self, status_code: int, headers: Mapping[str, str], content: bytes, *, encoded: bool
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        #: Whether ``content`` may still carry a ``Content-Encoding`` to undo.
        self.encoded = encoded

    def __repr__(self) -> str:
        return f"<Answer {self.status_code}, {len(self.content)} bytes>"

    @property
    def text(self) -> str:
        """The body as text (UTF-8; undecodable bytes replaced)."""
        return self.content.decode("utf-8", "replace")


class Engine(Protocol):
    """What sends one request and reads its whole answer, within the total time and the cap.

    Raises `httpx.HTTPError` subclasses only, as httpx's transports do: a
    connect-side error (`httpx.ConnectError`, `httpx.ConnectTimeout`,
    `httpx.PoolTimeout`, `httpx.UnsupportedProtocol`) only when nothing was
    sent; `AnswerTooLarge` past the cap; `httpx.ReadTimeout` past the total.
    """

    async def send(self, method: str, url: str, headers: Headers, content: bytes | None) -> Answer:
        """Send one request; return its whole answer."""
        ...

    async def aclose(self) -> None:
        """Close the connections; nothing is sent after this."""
        ...


def inflate(body: bytes, encoding: str, limit: int, request: httpx.Request | None = None) -> bytes:
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


def _inflate(
    body: bytes, formats: tuple[int, ...], limit: int, request: httpx.Request | None
) -> bytes:
    for wbits in formats:
        try:
            out = zlib.decompressobj(wbits).decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit:
            raise AnswerTooLarge(limit, request)
        return out
    raise httpx.DecodingError("the answer's compressed body cannot be read", request=request)


async def read_capped(response: httpx.Response, request: httpx.Request, limit: int) -> Answer:
    """Read an httpx transport's answer up to ``limit`` bytes, as sent.

    Raises:
        AnswerTooLarge: the body (declared or read) passes ``limit``; the
            connection is closed and the rest is not read.
    """
    if response.is_stream_consumed:  # read and decoded by the transport (a mock, in tests)
        if len(response.content) > limit:
            raise AnswerTooLarge(limit, request)
        return Answer(response.status_code, response.headers, response.content, encoded=False)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise AnswerTooLarge(limit, request)
    chunks: list[bytes] = []
    size = 0
    reading = response.aiter_raw()
    async for chunk in reading:
        size += len(chunk)
        if size > limit:
            # Close the connection, then let the readers run into it and
            # end, rather than leaving them suspended for the collector.
            await response.aclose()
            with contextlib.suppress(Exception):
                async for _ in reading:
                    pass
            raise AnswerTooLarge(limit, request)
        chunks.append(chunk)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return Answer(response.status_code, response.headers, body, encoded=True)


def gateway_headers(
    shop_id: str, secret_key: str, api_version: int | None
) -> list[tuple[str, str]]:
    """The headers of every request to the gateway: HTTP Basic with the shop's credentials."""
    credentials = base64.b64encode(f"{shop_id}:{secret_key}".encode()).decode()
    headers = [
        ("Accept", "application/json"),
        ("Accept-Encoding", "identity"),  # small answers; one that is encoded anyway is inflated
        ("User-Agent", f"begateway-async/{__version__}"),
        ("Authorization", f"Basic {credentials}"),
    ]
    if api_version is not None:
        headers.append(("X-API-Version", str(api_version)))
    return headers


class HttpCore:
    """What the Gateway needs of an HTTP client: one request, one whole, bounded answer.

    `httpx.AsyncClient` adds URL merging, cookie jars, auth flows, redirects
    and event hooks on every request: about a third of the client's CPU per
    poll, for nothing this protocol uses (no cookies, no redirects, one fixed
    Basic credential). This sends through an `Engine` instead, with the
    gateway's headers, and undoes a ``Content-Encoding`` within the cap.

    It is made before the event loop runs, and opened in it (`open`: the
    engine is chosen for the running loop); it sends nothing before that,
    nor after `aclose`.

    Args:
        engine: makes the `Engine` to send through, at `open`.
        headers: sent on every request (``Authorization`` included).
        max_answer_bytes: the most of one answer that is read, and inflated.
        observer: told of every request (the logs, ``on_event``, OpenTelemetry).
    """

    __slots__ = ("_engine", "_headers", "_limit", "_make", "_names", "_observer")

    def __init__(
        self,
        engine: Callable[[], Engine],
        headers: list[tuple[str, str]],
        max_answer_bytes: int = 1 << 20,
        observer: Observer | None = None,
    ) -> None:
        self._observer = observer or Observer(Timebase(None))
        self._make = engine
        self._engine: Engine | None = None
        self._headers = headers
        self._names = frozenset(name.lower() for name, _ in headers)
        self._limit = max_answer_bytes

    @property
    def observer(self) -> Observer:
        """Told of every request; the parts above report to it too."""
        return self._observer

    def __repr__(self) -> str:
        engine = type(self._engine).__name__ if self._engine is not None else "closed"
        return f"<HttpCore {engine}>"

    def open(self) -> None:
        """Make the engine (in the running event loop)."""
        self._engine = self._make()

    async def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Headers | None = None,
        subject: object = None,
    ) -> Answer:
        """Send one request and read its whole answer, within the total time and the cap.

        ``subject`` is what the request is for (a submit's journal entry, a
        polled job), as the `Observer` reports it.

        Raises:
            httpx.HTTPError: the engine's failure (connect, read, protocol, ...);
                `httpx.ReadTimeout` when the whole request took longer than the total;
                `AnswerTooLarge` when the answer, sent or inflated, passes the cap.
            GatewayStateError: the core is not open (the Gateway closed first).
        """
        engine = self._engine
        if engine is None:
            raise GatewayStateError("the Gateway is closed; nothing was sent", state="closed")
        sent = self._headers
        if headers:
            own = {name.lower() for name, _ in headers}  # a request's own headers win
            if own & self._names:
                sent = [h for h in sent if h[0].lower() not in own]
            sent = [*sent, *headers]
        observing = self._observer.sending(method, url, subject)
        named = name_asyncio()  # a caller's task (a submit): for this request only
        try:
            answer = await engine.send(method, url, sent, content)
            if answer.encoded:
                encoding = answer.headers.get("content-encoding")
                if encoding:
                    answer.content = inflate(answer.content, encoding, self._limit)
                answer.encoded = False
        except BaseException as exc:
            self._observer.sent(observing, None, exc)
            raise
        finally:
            if named is not None:
                unname(named)
        self._observer.sent(observing, answer.status_code, None)
        return answer

    async def aclose(self) -> None:
        """Close the engine and its connections; nothing is sent after this."""
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.aclose()
