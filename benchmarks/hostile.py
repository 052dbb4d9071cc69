"""What one hostile answer costs the client: a gzip bomb, on each engine, in a process of its own.

    python benchmarks/hostile.py                  # a 1 GiB bomb (about 1 MiB of gzip)
    python benchmarks/hostile.py --inflated-mib 64 --polls 8

Each engine runs in a fresh process (peak RSS is per process): a raw HTTP
server on 127.0.0.1 answers every poll with the bomb, `--polls` jobs poll it
at once, and the row gives the peak RSS above the process's start, the CPU
spent, and how the jobs ended. Results go to ``--out``/hostile.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import socket
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

MIB = 1 << 20


def bomb(inflated_mib: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MIB)
    return b"".join(packer.compress(block) for _ in range(inflated_mib)) + packer.flush()


def serve(body: bytes) -> tuple[str, socket.socket]:
    """Answer every request with ``body`` as gzip, in a thread; return the URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()

    def one(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(head + body)

    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}", sock


def client(url: str, engine: str, polls: int) -> dict[str, object]:
    """In this process: ``polls`` jobs poll the bomb at once; what it cost."""
    import asyncio

    import begateway_async as bga

    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu = time.process_time()

    async def main() -> list[str]:
        async with bga.Gateway(url, 361, "x" * 64, http=engine) as gw:  # type: ignore[arg-type]
            jobs = []
            for i in range(polls):
                token = {
                    "type": "begateway-async/job",
                    "v": 1,
                    "gateway": url,
                    "request_id": f"r{i}",
                    "status_url": f"{url}/async/status/r{i}",
                    "response_url": f"{url}/async/result/r{i}",
                    "operation": "payment",
                    "created_at": time.time(),
                }
                jobs.append(gw.resume(json.dumps(token)))
            ends = []
            for job in jobs:
                try:
                    await job
                    ends.append("result")
                except bga.GatewayError as exc:
                    ends.append(type(exc).__name__)
            return ends

    ends = asyncio.run(main())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "engine": engine,
        "polls": polls,
        "peak_rss_mib_above_start": round((peak - start_rss) / 1024, 1),
        "cpu_s": round(time.process_time() - cpu, 3),
        "ends": sorted(set(ends)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inflated-mib", type=int, default=1024)
    parser.add_argument("--polls", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--client", nargs=3, help=argparse.SUPPRESS)  # url engine polls
    args = parser.parse_args()
    if args.client:
        url, engine, polls = args.client
        print(json.dumps(client(url, engine, int(polls))))
        return
    body = bomb(args.inflated_mib)
    url, sock = serve(body)
    rows = []
    for engine in ("httpx", "aiohttp"):
        done = subprocess.run(  # noqa: S603
            [sys.executable, __file__, "--client", url, engine, str(args.polls)],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        row = json.loads(done.stdout)
        row["gzip_bytes"] = len(body)
        row["inflated_mib"] = args.inflated_mib
        rows.append(row)
        print(
            f"{engine:8} {args.polls} poll(s) of a {len(body) / MIB:.2f} MiB gzip that inflates to "
            f"{args.inflated_mib} MiB: peak RSS +{row['peak_rss_mib_above_start']} MiB, "
            f"CPU {row['cpu_s']} s, ended {row['ends']}"
        )
    sock.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hostile.json").write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
