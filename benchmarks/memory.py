"""Memory per pending job: N jobs submitted and all still pending at once.

    python benchmarks/memory.py                    # N = 100 000, both transports
    python benchmarks/memory.py --quick            # a smoke run
    python benchmarks/memory.py --n 5000 --http httpx --sites 15

The load benchmark's peak RSS mixes in what a run holds for a moment (answers
being read, the harness's own records); this one asks only what a pending job
costs. A simulator in its own process on loopback holds every task for an
hour; the client submits N of them through one Gateway and keeps the jobs, as
a caller would. Polls are spaced 10 minutes apart (``PollPolicy(first_delay=600,
max_delay=600)``) so that the run is N submits rather than millions of polls;
a pending job holds the same state either way.

Reported per pending job: the growth of the process's resident set (RSS),
and the bytes Python's allocator traced (tracemalloc, a second, smaller run
that also names the biggest allocation sites). Results:
``benchmarks/results/memory.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: How many submits are in flight at once (as in the load benchmark).
SUBMITTERS = 64
#: Jobs submitted (and kept) before the baseline: pools, caches and code warmed up.
WARM_UP = 1_000


async def _pending(url: str, n: int, http: str, *, traced: bool, sites: int) -> dict[str, Any]:
    import begateway_async as bga
    from contenders import SECRET, SHOP, _payment, _rss_kib

    poll = bga.PollPolicy(first_delay=600.0, max_delay=600.0)
    jobs: list[bga.Job[Any]] = []

    async def submit_range(start: int, stop: int) -> None:
        async def submitter(first: int) -> None:
            for i in range(first, stop, SUBMITTERS):
                jobs.append(await gw.submit(_payment(i)))  # noqa: PERF401 - one at a time

        await asyncio.gather(*(submitter(start + k) for k in range(SUBMITTERS)))

    async with bga.Gateway(url, SHOP, SECRET, poll=poll, http=http, drain=False) as gw:
        await submit_range(0, WARM_UP)
        gc.collect()
        if traced:
            tracemalloc.start(1)
            before = tracemalloc.take_snapshot()
            traced_before = tracemalloc.get_traced_memory()[0]
        rss_before = _rss_kib()
        started = time.perf_counter()
        await submit_range(WARM_UP, WARM_UP + n)
        elapsed = time.perf_counter() - started
        gc.collect()
        rss_after = _rss_kib()
        pending = gw.pending
        row: dict[str, Any] = {
            "http": http,
            "n": n,
            "pending": pending,
            "rss_bytes_per_job": (rss_after - rss_before) * 1024 / n,
            "submits_per_s": n / elapsed,
        }
        if traced:
            row["traced_bytes_per_job"] = (tracemalloc.get_traced_memory()[0] - traced_before) / n
            after = tracemalloc.take_snapshot()
            row["sites"] = [
                {"site": str(stat.traceback[0]), "bytes_per_job": stat.size_diff / n}
                for stat in after.compare_to(before, "lineno")[:sites]
            ]
            tracemalloc.stop()
    return row


def measure(n: int, http: str, *, traced: bool, sites: int) -> dict[str, Any]:
    """One run against a fresh simulator that keeps every task pending for an hour."""
    from begateway_async.testing import spawn

    with spawn(["--median", "3600", "--p99", "3601"]) as url:
        return asyncio.run(_pending(url, n, http, traced=traced, sites=sites))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=100_000, help="pending jobs (RSS run)")
    parser.add_argument("--traced-n", type=int, default=10_000, help="pending jobs (traced run)")
    parser.add_argument("--http", nargs="*", default=["httpx", "aiohttp"])
    parser.add_argument("--sites", type=int, default=10, help="allocation sites to list")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 000 / 1 000 jobs")
    args = parser.parse_args()
    if args.quick:
        args.n, args.traced_n = 2_000, 1_000
    rows = []
    for http in args.http:
        print(f"{http}: {args.n} pending jobs (RSS)", file=sys.stderr, flush=True)
        row = measure(args.n, http, traced=False, sites=0)
        print(f"{http}: {args.traced_n} pending jobs (traced)", file=sys.stderr, flush=True)
        traced = measure(args.traced_n, http, traced=True, sites=args.sites)
        row["traced_n"] = traced["n"]
        row["traced_bytes_per_job"] = traced["traced_bytes_per_job"]
        row["sites"] = traced["sites"]
        rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"python": platform.python_version(), "rows": rows}
    name = "memory-quick" if args.quick else "memory"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1))
    print("| transport | pending jobs | RSS B/job | traced B/job | submits/s |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['http']} | {r['pending']} | {r['rss_bytes_per_job']:.0f} | "
            f"{r['traced_bytes_per_job']:.0f} | {r['submits_per_s']:.0f} |"
        )
    for r in rows:
        print(f"\nbiggest allocation sites, {r['http']} (bytes per pending job):")
        for site in r["sites"]:
            print(f"  {site['bytes_per_job']:7.0f}  {site['site']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
