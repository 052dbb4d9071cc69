"""A burst, in process: our Gateway's default cadence against the naive poller, on the same wire.

    python benchmarks/load.py burst                       # 2 000 jobs, median 0.5 s, 3 rounds
    python benchmarks/load.py burst --n 20000 --rounds 1 --median 0.2 2.0

``n`` jobs are submitted at once (one task per job, as callers write
``asyncio.gather``) to the simulator through `httpx.ASGITransport` in the
same process (lognormal processing times, sigma 1): the client and the
gateway share one core, as in a test suite or a notebook, and every
request costs both. Contenders:

- ``default``: ``Gateway(...)`` with default settings;
- ``backoff``: the same with ``PollPolicy(adaptive=False)``;
- ``submits=256``: the default with ``Limits(concurrent_submits=256)``;
- ``naive``: one task per job, sleep 0.5 s, GET status_url until
  ``completed``, then GET response_url (httpx.AsyncClient, same transport).

Each contender runs in a fresh process; rounds are interleaved. Reported:
requests per job (the submit included; the simulator's count), the
detection lag (when the result reached the caller minus when the simulator
had it ready) p50 and p99, and client CPU per job (simulator included).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
BASE = "https://gateway.test"
SIGMA = 1.0
CONTENDERS: dict[str, dict[str, Any]] = {
    "naive": {},
    "default": {},
    "backoff": {"poll": {"adaptive": False}},
    "submits=256": {"limits": {"concurrent_submits": 256}},
}


def options(name: str) -> dict[str, Any]:
    """A contender's Gateway settings, from its name.

    A named one, or comma-separated parts: ``w=X`` (``lag_weight``),
    ``backoff AxB`` (``adaptive=False``, ``first_delay`` x ``factor``),
    ``submits=N`` (``concurrent_submits``), ``first=X`` and ``factor=X``
    (the backoff's ``first_delay`` and ``factor``, the plan still adaptive).
    """
    if name in CONTENDERS:
        return CONTENDERS[name]
    poll: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for part in name.split(","):
        if part.startswith("w="):
            poll["lag_weight"] = float(part[2:])
        elif part.startswith("backoff "):
            first, factor = part.split()[1].split("x")
            poll.update(adaptive=False, first_delay=float(first), factor=float(factor))
        elif part.startswith("submits="):
            limits["concurrent_submits"] = int(part[8:])
        elif part.startswith("first="):
            poll["first_delay"] = float(part[6:])
        elif part.startswith("factor="):
            poll["factor"] = float(part[7:])
        else:
            raise ValueError(f"unknown contender {name!r}")
    return {"poll": poll, "limits": limits}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if values else math.nan
    )


async def _ours(simulator: Any, n: int, options: dict[str, Any], woke: dict[str, float]) -> None:
    import begateway_async as bga
    from contenders import SECRET, SHOP, _payment

    gateway = bga.Gateway(
        BASE,
        SHOP,
        SECRET,
        transport=httpx.ASGITransport(app=simulator),
        poll=bga.PollPolicy(**options.get("poll", {})),
        limits=bga.Limits(**options.get("limits", {})),
    )

    async def one(gw: bga.Gateway, i: int) -> None:
        job = await gw.submit(_payment(i))
        await job
        woke[job.request_id] = time.time()

    async with gateway as gw:
        await asyncio.gather(*(one(gw, i) for i in range(n)))


async def _naive(simulator: Any, n: int, woke: dict[str, float], interval: float = 0.5) -> None:
    from contenders import PAYMENT_PATH, SECRET, SHOP, _body

    async def one(client: httpx.AsyncClient, i: int) -> None:
        ack = (await client.post(PAYMENT_PATH, content=_body(i))).json()
        while True:
            await asyncio.sleep(interval)
            if (await client.get(ack["status_url"])).json().get("status") == "completed":
                break
        (await client.get(ack["response_url"])).json()
        woke[ack["request_id"]] = time.time()

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=simulator),
        base_url=BASE,
        auth=(SHOP, SECRET),
        headers={"content-type": "application/json"},
        timeout=httpx.Timeout(120.0),
    ) as client:
        await asyncio.gather(*(one(client, i) for i in range(n)))


async def run(contender: str, n: int, median: float, seed: int) -> dict[str, Any]:
    """One contender on a fresh simulator; its requests per job, lag and CPU."""
    from begateway_async.testing import LogNormal, Simulator

    simulator = Simulator(processing=LogNormal(median, SIGMA), seed=seed)
    woke: dict[str, float] = {}
    cpu, wall = time.process_time(), time.perf_counter()
    if contender == "naive":
        await _naive(simulator, n, woke)
    else:
        await _ours(simulator, n, options(contender), woke)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    jobs = simulator.stats.jobs
    lags = [woke[rid] - job.ready_at for rid, job in jobs.items() if rid in woke]
    submit_lags = [job.created_at for job in jobs.values()]
    return {
        "contender": contender,
        "n": n,
        "median_s": median,
        "completed": len(woke),
        "requests_per_job": sum(simulator.stats.requests.values()) / max(1, len(jobs)),
        "lag_p50_s": _percentile(lags, 50),
        "lag_p99_s": _percentile(lags, 99),
        "cpu_ms_per_job": cpu * 1000 / max(1, len(woke)),
        "submits_spread_s": max(submit_lags) - min(submit_lags) if submit_lags else 0.0,
        "wall_s": wall,
    }


def worker(arguments: list[str]) -> int:
    """``load.py burst-worker CONTENDER N MEDIAN SEED``: one run, as JSON on stdout."""
    contender, n, median, seed = arguments
    sys.path.insert(0, str(HERE))
    print(json.dumps(asyncio.run(run(contender, int(n), float(median), int(seed)))))
    return 0


def main(arguments: list[str]) -> int:
    """``load.py burst [--n N ...] [--median S ...] [--rounds R] [--only NAME ...]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="load.py burst", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[2000])
    parser.add_argument("--median", type=float, nargs="+", default=[0.5])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only",
        nargs="+",
        default=list(CONTENDERS),
        help="contenders: "
        + ", ".join(CONTENDERS)
        + "; or parts joined by commas: w=X (lag_weight), 'backoff AxB' (first_delay x factor),"
        " submits=N (concurrent_submits), first=X and factor=X (the backoff, still adaptive)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "burst.json")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per run")
    args = parser.parse_args(arguments)
    samples: dict[tuple[str, int, float], list[dict[str, Any]]] = {}
    seeds = random.Random(7)
    for round_ in range(args.rounds):
        for n in args.n:
            for median in args.median:
                seed = seeds.randrange(
                    1 << 30
                )  # one seed per round: the contenders see the same draws
                for name in args.only:
                    command = [sys.executable, str(HERE / "load.py"), "burst-worker", name]
                    out = subprocess.run(  # noqa: S603
                        [*command, str(n), str(median), str(seed)],
                        check=True, capture_output=True, text=True, timeout=args.timeout,
                    )  # fmt: skip
                    row = json.loads(out.stdout.strip().splitlines()[-1])
                    samples.setdefault((name, n, median), []).append(row)
                    print(
                        f"round {round_ + 1} N={n} median={median:g}: {name:>12}: "
                        f"{row['requests_per_job']:.2f} req/job, lag p50 {row['lag_p50_s']:.3f} s, "
                        f"p99 {row['lag_p99_s']:.2f} s, {row['cpu_ms_per_job']:.2f} ms CPU/job",
                        file=sys.stderr,
                        flush=True,
                    )
    rows = []
    for (name, n, median), runs in samples.items():
        row: dict[str, Any] = {"contender": name, "n": n, "median_s": median, "rounds": len(runs)}
        for key in ("requests_per_job", "lag_p50_s", "lag_p99_s", "cpu_ms_per_job", "wall_s"):
            row[key] = statistics.median(r[key] for r in runs)
        rows.append(row)
    print("| N | median | contender | req/job | × naive | lag p50 s | lag p99 s | CPU ms/job |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for row in rows:
        naive = next(
            (r for r in rows if r["contender"] == "naive" and r["n"] == row["n"]
             and r["median_s"] == row["median_s"]),
            None,
        )  # fmt: skip
        ratio = row["requests_per_job"] / naive["requests_per_job"] if naive else math.nan
        print(
            f"| {row['n']} | {row['median_s']:g} | {row['contender']} | "
            f"{row['requests_per_job']:.2f} | {ratio:.2f} | {row['lag_p50_s']:.3f} | "
            f"{row['lag_p99_s']:.2f} | {row['cpu_ms_per_job']:.2f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"sigma": SIGMA, "rows": rows, "runs": samples_json(samples)}, indent=1)
    )
    print(f"wrote {args.out}")
    return 0


def samples_json(samples: dict[tuple[str, int, float], list[dict[str, Any]]]) -> list[Any]:
    """Every round of every cell, for the record."""
    return [run for runs in samples.values() for run in runs]
