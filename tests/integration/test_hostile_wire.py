"""Hostile answers on the wire, on both engines: a body that trickles, a gzip bomb."""

from __future__ import annotations

import functools
import gzip
import json
import socket
import time
import tracemalloc
import zlib

import anyio
import httpx
import pytest

import begateway_async as bga
from begateway_async._http import AnswerTooLarge, inflate
from begateway_async.testing import DEMO_SHOPS
from fakes import payment, transaction

pytestmark = pytest.mark.anyio

ENGINES = pytest.mark.parametrize("http", ["httpx", "auto"])  # auto: aiohttp on asyncio
FAST = bga.PollPolicy(first_delay=0.01, max_delay=0.05, adaptive=False)
SHORT = bga.Timeouts(total=0.3)
MIB = 1 << 20


@functools.cache
def bomb(inflated: int) -> bytes:
    """A gzip body of ``inflated`` zero bytes (about a thousandth of that in size)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MIB)
    return b"".join(packer.compress(block) for _ in range(inflated // MIB)) + packer.flush()


class Server:
    """A raw HTTP server on 127.0.0.1 that answers every request with ``answer(conn)``."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)  # noqa: FBT003
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.request_ids: list[str] = []
        self.requests = 0
        self.seen = anyio.Event()

    async def serve(self, reply: bytes, *, trickle: bool) -> None:
        """Answer every connection until cancelled; close them all then."""
        accepted: list[socket.socket] = []
        try:
            async with anyio.create_task_group() as tg:
                while True:
                    await anyio.wait_readable(self.sock)
                    conn, _ = self.sock.accept()
                    conn.setblocking(False)  # noqa: FBT003
                    accepted.append(conn)
                    tg.start_soon(self._one, conn, reply, trickle)
        finally:
            for conn in accepted:
                conn.close()
            self.sock.close()

    async def _one(self, conn: socket.socket, reply: bytes, trickle: bool) -> None:
        try:
            await anyio.wait_readable(conn)
            head = conn.recv(65536).decode("latin-1")
            self.requests += 1
            self.request_ids += [
                line.split(":", 1)[1].strip()
                for line in head.split("\r\n")
                if line.lower().startswith("requestid:")
            ]
            self.seen.set()
            if not trickle:
                await anyio.wait_writable(conn)
                conn.sendall(reply)
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n")
            while True:  # a byte at a time, never the end: only the client's deadline stops it
                await anyio.sleep(0.05)
                conn.send(b" ")
        except OSError:
            pass  # the client hung up
        finally:
            conn.close()

    async def polled(self, count: int) -> None:
        """Return once ``count`` requests came in."""
        while self.requests < count:
            self.seen = anyio.Event()
            await self.seen.wait()


def token(url: str) -> str:
    """A job token for a task on ``url`` (as another process would have saved it)."""
    return json.dumps(
        {
            "type": "begateway-async/job",
            "v": 1,
            "gateway": url,
            "request_id": "r1",
            "status_url": f"{url}/async/status/r1",
            "response_url": f"{url}/async/result/r1",
            "operation": "payment",
            "tracking_id": "order-42",
            "created_at": time.time(),
        }
    )


def answer(body: bytes, *headers: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def gateway(server: Server, http: str, **options: object) -> bga.Gateway:
    return bga.Gateway(server.url, 361, DEMO_SHOPS["361"], http=http, poll=FAST, **options)  # type: ignore[arg-type]


@ENGINES
async def test_a_trickling_poll_is_a_passing_failure(http):
    """A poll whose answer never ends is cut at Timeouts.total and retried; the job goes on."""
    server = Server()
    with anyio.fail_after(20):  # a bound in real time, not a measure
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: server.serve(b"", trickle=True))
            async with gateway(server, http, timeouts=SHORT, drain=False) as gw:
                job = gw.resume(token(server.url))
                await server.polled(3)  # the first two were cut off and retried
                assert not job.done()
                assert job.last_error is not None
                assert "no whole answer within 0.3 s" in job.last_error
            tg.cancel_scope.cancel()


@ENGINES
async def test_a_trickling_submit_is_resent_with_its_request_id(http):
    """A submit whose answer never ends may have arrived: re-sent with the same RequestID."""
    server = Server()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: server.serve(b"", trickle=True))
            async with gateway(server, http, timeouts=SHORT) as gw:
                with pytest.raises(bga.SubmitIndeterminate, match="ReadTimeout") as info:
                    await gw.submit(payment())
            tg.cancel_scope.cancel()
    assert server.request_ids == [info.value.idempotency_key] * 3


@ENGINES
async def test_a_gzip_bomb_is_cut_at_the_cap_as_it_inflates(http):
    """64 KiB of gzip that inflate to 64 MiB end the job at the cap: MalformedResponse."""
    server = Server()
    reply = answer(bomb(64 * MIB), "Content-Encoding: gzip")
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: server.serve(reply, trickle=False))
            async with gateway(server, http) as gw:
                tracemalloc.start()
                try:
                    with pytest.raises(bga.MalformedResponse, match=f"longer than {MIB} bytes"):
                        await gw.resume(token(server.url))
                    _, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
            tg.cancel_scope.cancel()
    assert peak < 8 * MIB  # about the cap, never the 64 MiB it would inflate to


@ENGINES
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "x-gzip, identity"])
async def test_a_compressed_result_is_read(http, encoding):
    """An honest compressed answer (which nobody asked for) is inflated and read."""
    body = json.dumps(transaction()).encode()
    packed = zlib.compress(body) if encoding == "deflate" else gzip.compress(body)
    server = Server()
    reply = answer(packed, f"Content-Encoding: {encoding}", "Content-Type: application/json")
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: server.serve(reply, trickle=False))
            async with gateway(server, http) as gw:
                tx = await gw.resume(token(server.url))
            tg.cancel_scope.cancel()
    assert tx.uid == "u1"


def test_inflating_a_bomb_costs_about_the_cap():
    """256 MiB of zeros in gzip: refused after the cap, with memory near the cap, not the bomb."""
    packed = bomb(256 * MIB)
    request = httpx.Request("GET", "https://gw.test/")
    tracemalloc.start()
    try:
        with pytest.raises(AnswerTooLarge):
            inflate(packed, "gzip", MIB, request)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * MIB


def test_an_unknown_encoding_is_a_decoding_error():
    """Brotli, zstd or anything else nobody asked for is not guessed at: a typed httpx error."""
    request = httpx.Request("GET", "https://gw.test/")
    with pytest.raises(httpx.DecodingError, match="unsupported Content-Encoding 'br'"):
        inflate(b"\x00", "br", MIB, request)
    with pytest.raises(httpx.DecodingError, match="cannot be read"):
        inflate(b"not gzip at all", "gzip", MIB, request)


@ENGINES
@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (answer(b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
        (
            b"HTTP/1.1 302 Found\r\nLocation: https://evil.test/\r\nContent-Length: 0\r\n\r\n",
            "redirect",
        ),
    ],
    ids=["deep", "redirect"],
)
async def test_an_unreadable_answer_on_the_wire_ends_the_job(http, reply, reason):
    """JSON too deep, or a redirect (never followed), ends the job malformed on either engine."""
    server = Server()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: server.serve(reply, trickle=False))
            async with gateway(server, http) as gw:
                with pytest.raises(bga.MalformedResponse, match=reason):
                    await gw.resume(token(server.url))
            tg.cancel_scope.cancel()
    assert server.requests == 1  # read once: neither retried nor followed
