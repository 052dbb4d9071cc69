"""The HTTP engines: httpx's default and the aiohttp-backed transport, and how failures map."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import anyio
import httpx
import pytest
import sniffio

import begateway_async as bga
from begateway_async._aiohttp import AiohttpEngine
from begateway_async._transports import POOL_SIZE, HttpxEngine, choose_engine, make_engine
from begateway_async.testing import DEMO_SHOPS, Fixed, Simulator, serve
from fakes import payment

pytestmark = pytest.mark.anyio

LIMITS = httpx.Limits(max_connections=4)
TIMEOUT = httpx.Timeout(connect=1.0, read=0.2, write=1.0, pool=1.0)
#: aiohttp runs on asyncio only: these tests are not made for Trio at all (no skip).
ASYNCIO_ONLY = pytest.mark.parametrize("anyio_backend", ["asyncio"])


async def test_auto_picks_aiohttp_on_asyncio_only():
    """`auto` sends through aiohttp on asyncio (the extra is installed here), httpx on Trio."""
    engine = make_engine("auto", limits=bga.Limits(max_connections=4), timeouts=bga.Timeouts())
    if sniffio.current_async_library() == "asyncio":
        assert isinstance(engine, AiohttpEngine)
    else:
        assert isinstance(engine, HttpxEngine)
        with pytest.raises(bga.InvalidRequest, match="asyncio only"):
            choose_engine("aiohttp")
    await engine.aclose()
    assert choose_engine("httpx") == "httpx"


async def test_httpx_engine_spreads_connections_over_small_pools():
    """The httpx pool's cost grows with its size: 81 connections are small pools, 81 in all."""
    timeouts = bga.Timeouts()
    engine = make_engine("httpx", limits=bga.Limits(max_connections=81), timeouts=timeouts)
    assert isinstance(engine, HttpxEngine)
    caps = engine.caps
    assert caps is not None
    assert sum(caps) == 81
    assert len(caps) == 81 // POOL_SIZE
    assert caps == sorted(caps, reverse=True)  # the larger pools first, one more at most
    assert caps[0] - caps[-1] <= 1
    await engine.aclose()
    small = make_engine("httpx", limits=bga.Limits(max_connections=5), timeouts=timeouts)
    assert isinstance(small, HttpxEngine)
    assert small.caps == [5]
    await small.aclose()


@pytest.mark.parametrize("http", ["httpx", "auto"])
async def test_both_engines_pay(http):
    """A payment goes through either engine against the simulator on loopback."""
    with serve(Simulator(processing=Fixed(0.05))) as url:
        async with bga.Gateway(url, 361, DEMO_SHOPS["361"], http=http) as gw:
            tx = await gw.payment(payment(tracking_id=None))
    assert tx.successful


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("http", ["httpx", "auto"])
async def test_refused_connection_is_not_sent(http):
    """Connection refused means nothing was sent, on either engine: TransportError, no guess."""
    url = f"http://127.0.0.1:{_closed_port()}"
    async with bga.Gateway(url, 361, DEMO_SHOPS["361"], http=http) as gw:
        with pytest.raises(bga.TransportError, match="nothing was sent") as refused:
            await gw.submit(bga.StatusQuery(uid="u1"))
    assert "ssl" not in str(refused.value)  # plain http: aiohttp's "ssl:default" is not repeated


def _listening() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)  # noqa: FBT003
    return server


async def _serve_raw(server: socket.socket, reply: bytes, *, hang_up: bool) -> None:
    """Answer each request on ``server`` with the raw ``reply``, then hang up or stay silent."""
    kept: list[socket.socket] = []
    try:
        while True:
            await anyio.wait_readable(server)
            conn, _ = server.accept()
            conn.setblocking(False)  # noqa: FBT003
            await anyio.wait_readable(conn)
            conn.recv(65536)
            conn.send(reply)
            if hang_up:
                conn.close()
            else:
                kept.append(conn)
    finally:
        for conn in kept:
            conn.close()


async def _send_to_raw(engine: AiohttpEngine, reply: bytes, *, hang_up: bool) -> None:
    """GET through ``engine`` from a server that answers the raw ``reply``; close both after."""
    server = _listening()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/x"
    failure: Exception | None = None
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: _serve_raw(server, reply, hang_up=hang_up))
            try:
                await engine.send("GET", url, [], None)
            except Exception as exc:  # noqa: BLE001 - raised below, outside the task group
                failure = exc
            tg.cancel_scope.cancel()
    finally:
        await engine.aclose()
        server.close()
    if failure is not None:
        raise failure


async def test_a_hang_up_after_sending_is_never_called_not_sent():
    """A server that reads the request and hangs up: the submit is indeterminate, not 'not sent'."""
    engine = "aiohttp" if sniffio.current_async_library() == "asyncio" else "httpx"
    server = _listening()
    port = server.getsockname()[1]
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: _serve_raw(server, b"", hang_up=True))
            async with bga.Gateway(
                f"http://127.0.0.1:{port}",
                361,
                DEMO_SHOPS["361"],
                http=engine,
                poll=bga.PollPolicy(first_delay=0.01, max_delay=0.05),
            ) as gw:
                with pytest.raises(bga.SubmitIndeterminate):
                    await gw.submit(bga.StatusQuery(uid="u1"))
            tg.cancel_scope.cancel()
    finally:
        server.close()


@pytest.mark.parametrize(
    ("reply", "hang_up", "expected"),
    [
        # Half an answer, then the connection closes: the request was sent.
        (b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"a"', True, httpx.ReadError),
        # Not HTTP at all.
        (b"garbage\r\n\r\n", True, httpx.RemoteProtocolError),
        # Nothing comes back within the read timeout.
        (b"", False, httpx.ReadTimeout),
    ],
)
@ASYNCIO_ONLY
async def test_aiohttp_failures_after_sending_are_never_connect_errors(reply, hang_up, expected):
    """Our aiohttp engine maps failures after the request was written to read-side errors."""
    engine = AiohttpEngine(LIMITS, TIMEOUT, total=5.0, max_answer_bytes=1 << 20)
    with pytest.raises(expected):
        await _send_to_raw(engine, reply, hang_up=hang_up)


@ASYNCIO_ONLY
async def test_aiohttp_total_time_is_a_read_timeout():
    """A body that trickles past the total time is a `httpx.ReadTimeout` (it may have arrived)."""
    engine = AiohttpEngine(LIMITS, httpx.Timeout(5.0), total=0.3, max_answer_bytes=1 << 20)
    with pytest.raises(httpx.ReadTimeout):
        await _send_to_raw(
            engine, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{", hang_up=False
        )


@ASYNCIO_ONLY
async def test_aiohttp_engine_reads_the_whole_answer():
    """Status, headers (case-insensitive) and the whole body come back as one `Answer`."""
    with serve(Simulator()) as url:
        engine = AiohttpEngine(LIMITS, TIMEOUT, total=5.0, max_answer_bytes=1 << 20)
        try:
            answer = await engine.send("GET", f"{url}/async/responses/nope", [], None)
        finally:
            await engine.aclose()
    assert answer.status_code == 404
    assert answer.headers["Content-Type"].startswith("application/json")
    assert json.loads(answer.content)


@pytest.mark.parametrize("http", ["httpx", "auto"])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_an_oversized_answer_is_cut_off_and_fails_only_its_job(http, declared):
    """A poll answered with more than max_answer_bytes ends that job (MalformedResponse)."""
    big = b"[" + b"0," * 40_000 + b"0]"  # 80 KB of valid JSON
    if declared:
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big
    else:
        chunk = b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n"
        reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk
    server = _listening()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: _serve_raw(server, reply, hang_up=True))
            async with bga.Gateway(
                url,
                361,
                DEMO_SHOPS["361"],
                http=http,
                limits=bga.Limits(max_answer_bytes=10_000),
            ) as gw:
                job = gw.resume(_token(url))
                with pytest.raises(bga.MalformedResponse, match="longer than 10000 bytes"):
                    await job
            tg.cancel_scope.cancel()
    finally:
        server.close()


def _token(url: str) -> str:
    """A job token for a task on ``url`` (as another process would have saved it)."""
    data = {
        "type": "begateway-async/job",
        "v": 1,
        "gateway": url,
        "request_id": "big-1",
        "status_url": f"{url}/async/status/big-1",
        "response_url": f"{url}/async/responses/big-1",
        "operation": "payment",
        "created_at": time.time(),
    }
    return json.dumps(data)


class _Held(httpx.AsyncBaseTransport):
    """Answers 200 at once; the first request waits for ``hold`` (if set), through any timeout."""

    def __init__(self) -> None:
        self.hold: anyio.Event | None = anyio.Event()
        self.headers: list[httpx.Headers] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.headers.append(request.headers)
        hold, self.hold = self.hold, None
        if hold is not None:
            with anyio.CancelScope(shield=True):  # holds its slot, whatever the total says
                await hold.wait()
        return httpx.Response(200, content=b"{}")


async def test_waiting_for_a_pool_slot_is_not_counted_in_the_total_time():
    """The total bounds sending and the answer; the wait for a slot has the pool timeout alone.

    Before, a request that waited for a slot past ``total`` ended as a
    `httpx.ReadTimeout` ("may have arrived") though it never left the machine.
    """
    transport = _Held()
    hold = transport.hold
    assert hold is not None
    engine = HttpxEngine(
        [transport], httpx.Timeout(5.0), total=0.1, max_answer_bytes=1 << 20, caps=[1]
    )
    outcomes: list[object] = []

    async def get() -> None:
        try:
            answer = await engine.send("GET", "http://127.0.0.1:1/x", [], None)
        except httpx.HTTPError as exc:
            outcomes.append(type(exc))
        else:
            outcomes.append(answer.status_code)

    async with anyio.create_task_group() as tg:
        tg.start_soon(get)  # holds the only slot for 0.3 s
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(get)  # waits for the slot, three times the total
        await anyio.sleep(0.3)
        hold.set()
    assert outcomes == [200, 200]  # the waiting one too was sent and answered, not timed out
    await engine.aclose()


async def test_both_engines_ask_for_an_unencoded_answer():
    """Requests say ``Accept-Encoding: identity`` (an answer encoded anyway is inflated)."""
    transport = _Held()
    transport.hold = None
    async with bga.Gateway("https://gw.test", 361, DEMO_SHOPS["361"], transport=transport) as gw:
        with contextlib.suppress(bga.GatewayError):  # "{}" is no acknowledgement
            await gw.submit(bga.StatusQuery(uid="u1"))
    assert transport.headers[0]["accept-encoding"] == "identity"
