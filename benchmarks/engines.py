"""Client CPU per HTTP request: raw httpx, raw aiohttp, our two engines, and a protocol floor.

    python benchmarks/engines.py                 # 3 interleaved rounds at 1, 64, 512 in flight
    python benchmarks/engines.py --rounds 1 --inflight 64 --only ours-aiohttp aiohttp

A fake gateway (a bare asyncio protocol on uvloop with httptools, answering
every request with one fixed transaction answer, keep-alive) runs in its own
process, so its CPU is not counted. Each (client, in-flight) cell runs in a
fresh worker process: it opens its connections with a warm-up, then sends
``requests`` GETs from ``in-flight`` concurrent loops, reading and decoding
each answer, and reports ``time.process_time`` per request. Every client
gets the same pool size (the Gateway's default, 80 connections) and the
library's own headers. Rows are the median of the rounds, the rounds
interleaved (round 1 of every cell, then round 2, ...).

Output: ``benchmarks/results/engines.json`` and ``engines.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLIENTS = ("httpx", "aiohttp", "ours-httpx", "ours-aiohttp", "floor")
CONNECTIONS = 80
#: Measured requests per cell, by in-flight count (plus a warm-up of 2 x in-flight).
REQUESTS = {1: 2000, 64: 4096, 512: 6144}
BODY = json.dumps(
    {
        "transaction": {
            "uid": "b3c1a2d4-7e9f-4a2b-9c1d-0e1f2a3b4c5d",
            "status": "successful",
            "amount": 100,
            "currency": "USD",
            "description": "Benchmark",
            "type": "payment",
            "tracking_id": "bench-1",
            "message": "Successfully processed",
            "test": True,
            "created_at": "2026-12-03T10:00:00.000Z",
            "updated_at": "2026-12-03T10:00:01.000Z",
            "credit_card": {"last_4": "0000", "first_1": "4", "brand": "visa"},
        }
    }
).encode()
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)
) + BODY


# -- the fake gateway ------------------------------------------------------------------------


class _Server(asyncio.Protocol):
    def __init__(self) -> None:
        import httptools

        self._parser = httptools.HttpRequestParser(self)
        self._transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_message_complete(self) -> None:
        self._transport.write(ANSWER)


def serve() -> int:
    """Run the fake gateway on a free loopback port; print it; stop on SIGINT/SIGTERM."""
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Server, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.close()

    uvloop.run(main())
    return 0


# -- the clients -------------------------------------------------------------------------------


def _headers() -> list[tuple[str, str]]:
    from begateway_async._http import gateway_headers

    return gateway_headers(
        "361", "b8647b68898b084b836474ed8d61ffe117c9a01168d867f24953b776ddcb134d", 2
    )


class _FloorConnection(asyncio.Protocol):
    """One keep-alive connection, one request at a time, answers parsed by httptools."""

    def __init__(self) -> None:
        import httptools

        self._parser = httptools.HttpResponseParser(self)
        self._chunks: list[bytes] = []
        self.transport: Any = None
        self.waiter: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        body, self._chunks = b"".join(self._chunks), []
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(body)


class _Floor:
    """A minimal pooled HTTP/1.1 client: what Python needs at the least per request."""

    def __init__(self, port: int, path: str) -> None:
        head = [b"GET %s HTTP/1.1" % path.encode(), b"Host: 127.0.0.1:%d" % port]
        head += [f"{name}: {value}".encode() for name, value in _headers()]
        self._request = b"\r\n".join(head) + b"\r\n\r\n"
        self._port = port
        self._idle: deque[_FloorConnection] = deque()
        self._opened = 0
        self._waiting: deque[asyncio.Future[_FloorConnection]] = deque()

    async def _connection(self) -> _FloorConnection:
        if self._idle:
            return self._idle.popleft()
        if self._opened < CONNECTIONS:
            self._opened += 1
            loop = asyncio.get_running_loop()
            _, connection = await loop.create_connection(_FloorConnection, "127.0.0.1", self._port)
            return connection
        waiter: asyncio.Future[_FloorConnection] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        return await waiter

    async def get(self) -> bytes:
        connection = await self._connection()
        connection.waiter = asyncio.get_running_loop().create_future()
        connection.transport.write(self._request)
        body = await connection.waiter
        if self._waiting:
            self._waiting.popleft().set_result(connection)
        else:
            self._idle.append(connection)
        return body

    async def aclose(self) -> None:
        for connection in self._idle:
            connection.transport.close()


async def _client(name: str, url: str) -> tuple[Any, Any]:
    """(one GET returning the body, a closer) for client ``name``."""
    import httpx

    headers = _headers()
    if name == "httpx":
        limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
        client = httpx.AsyncClient(headers=headers, limits=limits)

        async def get_httpx() -> bytes:
            return (await client.get(url)).content

        return get_httpx, client.aclose
    if name == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONNECTIONS),
            headers=headers,
        )

        async def get_aiohttp() -> bytes:
            async with session.get(url) as answer:
                return await answer.read()

        return get_aiohttp, session.close
    if name == "floor":
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        floor = _Floor(port, "/" + url.split("/", 3)[3])
        return floor.get, floor.aclose
    from begateway_async._http import HttpCore

    try:  # the engines of this version
        import begateway_async as bga
        from begateway_async._transports import make_engine

        def engine() -> Any:
            return make_engine(
                name.removeprefix("ours-"),  # type: ignore[arg-type]
                limits=bga.Limits(max_connections=CONNECTIONS),
                timeouts=bga.Timeouts(),
            )

        core = HttpCore(engine, headers)
        target: Any = url
    except ImportError:  # the transports of 0.x before this benchmark (for a "before" figure)
        from begateway_async._transports import make_transport  # type: ignore[attr-defined]

        raw = [(k.encode(), v.encode()) for k, v in headers]
        core = HttpCore(
            lambda: make_transport(name.removeprefix("ours-"), CONNECTIONS),
            raw,  # type: ignore[arg-type]
            httpx.Timeout(10.0),  # type: ignore[arg-type]
        )
        target = httpx.URL(url)
    core.open()

    async def get_ours() -> bytes:
        return (await core.request("GET", target)).content

    return get_ours, core.aclose


async def _measure(name: str, url: str, inflight: int, requests: int) -> dict[str, Any]:
    get, close = await _client(name, url)

    async def loop(count: int) -> None:
        for _ in range(count):
            json.loads(await get())

    await asyncio.gather(*(loop(2) for _ in range(inflight)))  # warm-up: open the connections
    per_loop = max(1, requests // inflight)
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(loop(per_loop) for _ in range(inflight)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await close()
    done = per_loop * inflight
    return {"cpu_us_per_request": cpu * 1e6 / done, "requests_per_s": done / wall, "requests": done}


def worker(name: str, url: str, inflight: int, requests: int) -> int:
    print(json.dumps(asyncio.run(_measure(name, url, inflight, requests))))
    return 0


# -- the run -----------------------------------------------------------------------------------


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    figure, axes = plt.subplots(figsize=(8, 4.5))
    levels = sorted({row["inflight"] for row in rows})
    names = [name for name in CLIENTS if any(row["client"] == name for row in rows)]
    width = 0.8 / max(1, len(names))
    for k, name in enumerate(names):
        values = [
            next(
                (
                    r["cpu_us_per_request"]
                    for r in rows
                    if r["client"] == name and r["inflight"] == n
                ),
                0,
            )
            for n in levels
        ]
        axes.bar([i + k * width for i in range(len(levels))], values, width, label=name)
    axes.set_xticks(
        [i + 0.4 - width / 2 for i in range(len(levels))], [f"{n} in flight" for n in levels]
    )
    axes.set_ylabel("client CPU µs per request")
    axes.set_title("CPU per request, loopback, fake gateway in its own process")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inflight", type=int, nargs="+", default=list(REQUESTS))
    parser.add_argument("--only", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per cell")
    args = parser.parse_args()
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, __file__, "serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/beyag/transactions/b3c1a2d4"
        samples: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for round_ in range(args.rounds):
            for inflight in args.inflight:
                for name in args.only:
                    requests = REQUESTS.get(inflight, 16 * inflight)
                    command = [sys.executable, __file__, "worker", name, url]
                    out = subprocess.run(  # noqa: S603
                        [*command, str(inflight), str(requests)],
                        check=True, capture_output=True, text=True, timeout=args.timeout,
                    )  # fmt: skip
                    sample = json.loads(out.stdout.strip().splitlines()[-1])
                    samples.setdefault((name, inflight), []).append(sample)
                    print(
                        f"round {round_ + 1}: {name:>13} {inflight:>4} in flight: "
                        f"{sample['cpu_us_per_request']:8.1f} µs/request",
                        flush=True,
                    )
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=10)
    rows = [
        {
            "client": name,
            "inflight": inflight,
            "cpu_us_per_request": statistics.median(s["cpu_us_per_request"] for s in runs),
            "requests_per_s": statistics.median(s["requests_per_s"] for s in runs),
            "rounds": [s["cpu_us_per_request"] for s in runs],
        }
        for (name, inflight), runs in samples.items()
    ]
    print(
        "\n| client CPU µs per request | "
        + " | ".join(f"{n} in flight" for n in args.inflight)
        + " |"
    )
    print("|---|" + "---:|" * len(args.inflight))
    for name in args.only:
        cell = {r["inflight"]: r["cpu_us_per_request"] for r in rows if r["client"] == name}
        cells = [f"{cell[n]:.0f}" for n in args.inflight]
        print(f"| {name} | " + " | ".join(cells) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "connections": CONNECTIONS}
    (args.out / "engines.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n"
    )
    _plot(rows, args.out / "engines.png")
    print(f"wrote {args.out / 'engines.json'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve())
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        sys.exit(worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
    sys.exit(main())
