"""Load benchmark: our client against the naive way, the oracle and the floor, in one run.

    python benchmarks/load.py              # the full run (N = 1 000, 10 000, 100 000)
    python benchmarks/load.py --quick      # a smoke run: small N, a few contenders
    python benchmarks/load.py --sizes 1000 --only "ours [aiohttp]" "naive 1 s [aiohttp]"
    python benchmarks/load.py burst        # in process: the default cadence vs the naive poller

Each contender runs in a fresh worker process (its CPU and memory are its
own) against a fresh simulator in another process on loopback (lognormal
processing times, median 1 s, p99 10 s by default). The simulator's counters
give the requests per job and each job's completion time; the worker gives
the moment each result reached the caller. Results: JSON and a markdown table
in ``benchmarks/results/``, plots as PNG next to them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=120) as answer:  # noqa: S310 - loopback simulator
        return json.load(answer)


def run_one(
    contender: str, n: int, options: dict[str, Any], median: float, p99: float, timeout: float
) -> dict[str, Any]:
    """Run a contender in a worker process against a fresh simulator; return its row."""
    from begateway_async.testing import spawn

    with spawn(["--median", str(median), "--p99", str(p99)]) as url:
        with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
            command = [
                sys.executable,
                str(HERE / "load.py"),
                "worker",
                contender,
                str(n),
                url,
                json.dumps(options),
                out.name,
            ]
            subprocess.run(command, check=True, timeout=timeout)  # noqa: S603
            client = json.load(open(out.name, encoding="utf-8"))  # noqa: SIM115
        stats = _get(f"{url}/_simulator/stats")
        jobs = _get(f"{url}/_simulator/jobs")
    lags, fractions = [], []
    for request_id, woke in client["woke"].items():
        job = jobs.get(request_id)
        if job is None:
            continue
        lag = woke - job["ready_at"]
        lags.append(lag)
        processing = job["ready_at"] - job["created_at"]
        if processing > 0:
            fractions.append(lag / processing)
    done = len(client["woke"])
    return {
        "contender": contender,
        "options": options,
        "n": n,
        "completed": done,
        "errors": len(client["errors"]),
        "cpu_ms_per_job": client["cpu_s"] * 1000 / max(1, done),
        "requests_per_job": stats["requests_total"] / max(1, stats["jobs"]),
        "lag_p50_s": _percentile(lags, 50),
        "lag_p99_s": _percentile(lags, 99),
        "lag_p50_fraction": _percentile(fractions, 50),
        "lag_p99_fraction": _percentile(fractions, 99),
        "peak_rss_mib": client["peak_rss_kib"] / 1024,
        "peak_pending": client["peak_pending"],
        "jobs_per_s": done / client["wall_s"] if client["wall_s"] else math.nan,
        "notifications": stats.get("notifications", {}),
        "wall_s": client["wall_s"],
    }


def label(row: dict[str, Any]) -> str:
    """A short name for a row's contender and settings."""
    options = row["options"]
    name = row["contender"]
    if name == "naive":
        name = f"naive {options['interval']:g} s"
    elif name == "oracle":
        name = f"oracle w={options['weight']:g}"
    elif name == "ours":
        poll = options.get("poll", {})
        parts = ["webhooks"] if options.get("webhooks") else []
        if "webhook_poll" in options:
            fallback = options["webhook_poll"]
            parts.append(f"fallback polls from {fallback['first_delay']:g} s")
        if poll.get("status_first"):
            parts.append("status_first")
        if poll.get("adaptive") is False:
            parts.append(f"backoff {poll.get('first_delay', 0.6):g}x{poll.get('factor', 1.35):g}")
        elif "lag_weight" in poll:
            parts.append(f"adaptive w={poll['lag_weight']:g}")
        elif "target_lag" in poll:
            parts.append(f"target_lag {poll['target_lag']:g} s")
        if options.get("journal"):
            parts.append("SQLite journal")
        name = "ours" + (f" ({', '.join(parts)})" if parts else "")
    http = options.get("http", "httpx")
    return f"{name} [{http}]"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The results as a markdown table."""
    header = (
        "| contender | N | req/job | lag p50 s (×proc) | lag p99 s (×proc) | CPU ms/job | "
        "CPU µs/req | peak RSS MiB | peak pending | jobs/s | wall s | errors |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {label(r)} | {r['n']} | {r['requests_per_job']:.2f} | "
        f"{r['lag_p50_s']:.3f} ({r['lag_p50_fraction']:.2f}) | "
        f"{r['lag_p99_s']:.3f} ({r['lag_p99_fraction']:.2f}) | {r['cpu_ms_per_job']:.3f} | "
        f"{1000 * r['cpu_ms_per_job'] / r['requests_per_job']:.0f} | "
        f"{r['peak_rss_mib']:.0f} | {r['peak_pending']} | {r['jobs_per_s']:.0f} | "
        f"{r['wall_s']:.1f} | {r['errors'] + r['n'] - r['completed']} |"
        for r in rows
    ]
    return header + "\n".join(lines) + "\n"


#: ``Gateway(webhook_poll=...)``: polls as a mere fallback when notifications come.
FALLBACK_POLLS = {"adaptive": False, "first_delay": 30.0, "max_delay": 60.0}


def plan_runs(
    quick: bool, sizes: list[int], median: float, sigma: float
) -> list[tuple[str, int, dict[str, Any]]]:
    """Every (contender, N, options) of the run."""
    runs: list[tuple[str, int, dict[str, Any]]] = []
    truth = {"median": median, "sigma": sigma}
    if quick:
        n = sizes[0]
        return [
            ("ours", n, {"http": "httpx"}),
            ("ours", n, {"http": "aiohttp"}),
            ("ours", n, {"http": "aiohttp", "webhooks": True}),
            ("naive", n, {"interval": 1.0, "http": "httpx"}),
            ("oracle", n, {**truth, "weight": 4.0, "http": "httpx"}),
            ("floor", n, {"http": "httpx"}),
        ]
    for n in sizes:
        runs += [("ours", n, {"http": "httpx"}), ("ours", n, {"http": "aiohttp"})]
        # About the requests per job of the cadence before the lag target (lag_weight 8).
        runs.append(("ours", n, {"http": "aiohttp", "poll": {"target_lag": 0.5}}))
        runs.append(("ours", n, {"http": "aiohttp", "journal": True}))
        if n > 20_000:  # the baselines would take too long
            continue
        runs += [
            ("ours", n, {"http": "aiohttp", "webhooks": True}),
            ("ours", n, {"http": "aiohttp", "webhooks": True, "webhook_poll": FALLBACK_POLLS}),
            ("ours", n, {"http": "aiohttp", "poll": {"status_first": True}}),
            ("ours", n, {"http": "aiohttp", "poll": {"adaptive": False}}),
            ("floor", n, {"http": "httpx"}),
            ("floor", n, {"http": "aiohttp"}),
            ("naive", n, {"interval": 1.0, "http": "aiohttp"}),
        ]
        if n <= 2_000:  # httpx's pool with 1 000+ waiting tasks is very slow
            runs.append(("naive", n, {"interval": 1.0, "http": "httpx"}))
    # The trade-off curves, at the smallest N.
    n = sizes[0]
    for interval in (0.25, 0.5, 2.0):
        runs.append(("naive", n, {"interval": interval, "http": "aiohttp"}))
    for weight in (1.0, 2.0, 4.0, 8.0, 16.0, 32.0):
        runs.append(("oracle", n, {**truth, "weight": weight, "http": "aiohttp"}))
        runs.append(("ours", n, {"http": "aiohttp", "poll": {"lag_weight": weight}}))
    for first, factor in ((0.25, 1.2), (0.4, 1.3), (0.6, 1.35), (1.0, 1.5), (1.5, 1.8)):
        runs.append(
            (
                "ours",
                n,
                {
                    "http": "aiohttp",
                    "poll": {"adaptive": False, "first_delay": first, "factor": factor},
                },
            )
        )
    return runs


def _save(plt: Any, figure: Any, axes: Any, path: Path) -> str:
    """Put the legend on the first axes, write the figure as PNG, return the file's name."""
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name


def plots(rows: list[dict[str, Any]], directory: Path) -> list[str]:
    """The trade-off curve and the per-N figures, as PNG files."""
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    n = min(r["n"] for r in rows)
    families: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["n"] != n:
            continue
        poll = r["options"].get("poll", {})
        family = r["contender"]
        if family == "ours":
            family = "ours backoff" if poll.get("adaptive") is False else "ours adaptive"
            if poll.get("status_first"):
                family = "ours status_first"
        families.setdefault(f"{family} [{r['options'].get('http', 'httpx')}]", []).append(r)
    figure, axes = plt.subplots(1, 2, figsize=(12, 5))
    for name, family_rows in sorted(families.items()):
        members = sorted(family_rows, key=lambda r: r["lag_p50_s"])
        for axis, key in zip(axes, ("lag_p50_s", "lag_p99_s"), strict=True):
            axis.plot(
                [r[key] for r in members],
                [r["requests_per_job"] for r in members],
                "o-",
                label=name,
            )
    for axis, what in zip(axes, ("p50", "p99"), strict=True):
        axis.set_xlabel(f"detection lag {what} (s)")
        axis.set_ylabel("HTTP requests per job")
        axis.set_title(f"requests per job against lag {what}, N = {n}")
        axis.grid(alpha=0.3)
    written.append(_save(plt, figure, axes, directory / "tradeoff.png"))
    sizes = sorted({r["n"] for r in rows})
    if len(sizes) > 1:
        figure, axes = plt.subplots(1, 2, figsize=(12, 5))
        by_label: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_label.setdefault(label(r), []).append(r)
        for name, members in sorted(by_label.items()):
            if len({m["n"] for m in members}) < 2:
                continue
            members.sort(key=lambda r: r["n"])
            axes[0].plot(
                [m["n"] for m in members],
                [m["requests_per_job"] for m in members],
                "o-",
                label=name,
            )
            axes[1].plot(
                [m["n"] for m in members], [m["cpu_ms_per_job"] for m in members], "o-", label=name
            )
        for axis, what in zip(
            axes, ("HTTP requests per job", "client CPU ms per job"), strict=True
        ):
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set_xlabel("concurrent jobs N")
            axis.set_ylabel(what)
            axis.grid(alpha=0.3)
        written.append(_save(plt, figure, axes, directory / "scaling.png"))
    return written


def _medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per contender and N: each figure the median of its rounds (first-seen order)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((label(run), run["n"]), []).append(run)
    rows = []
    for same in groups.values():
        row = dict(same[0])
        for key, value in row.items():
            if isinstance(value, float):
                row[key] = statistics.median(run[key] for run in same)
        row["rounds"] = len(same)
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--median", type=float, default=1.0)
    parser.add_argument("--p99", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per contender run")
    parser.add_argument(
        "--only", nargs="+", default=None, help="run only the rows whose label is one of these"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds; a row is their median"
    )
    parser.add_argument("--name", default=None, help="output file name (default: load or quick)")
    args = parser.parse_args()
    sizes = args.sizes or ([200] if args.quick else [1_000, 10_000, 100_000])
    sigma = math.log(args.p99 / args.median) / 2.3263478740408408
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    runs = plan_runs(args.quick, sizes, args.median, sigma)
    if args.only:
        runs = [run for run in runs if label({"contender": run[0], "options": run[2]}) in args.only]
    started = time.perf_counter()
    done: list[dict[str, Any]] = []
    total = len(runs) * args.rounds
    for r in range(args.rounds):
        for i, (contender, n, options) in enumerate(runs, 1):
            print(
                f"[{r * len(runs) + i}/{total}] {contender} N={n} {json.dumps(options)}",
                file=sys.stderr,
                flush=True,
            )
            try:
                done.append(run_one(contender, n, options, args.median, args.p99, args.timeout))
            except subprocess.SubprocessError as exc:
                print(f"    failed: {exc}", file=sys.stderr)
    rows = _medians(done) if args.rounds > 1 else done
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "processing": {
            "distribution": "lognormal",
            "median_s": args.median,
            "p99_s": args.p99,
            "sigma": sigma,
        },
        "quick": args.quick,
        "elapsed_s": time.perf_counter() - started,
        "rounds": args.rounds,
        "rows": rows,
        **({"runs": done} if args.rounds > 1 else {}),
    }
    name = args.name or ("quick" if args.quick else "load")
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1))
    table = markdown(rows)
    (args.out / f"{name}.md").write_text(table)
    result["plots"] = plots(rows, args.out)
    print(table)
    return 0


def worker() -> int:
    """``load.py worker CONTENDER N URL OPTIONS OUT``: one contender's run, measured."""
    from contenders import run

    contender, n, url, options, out = sys.argv[2:7]
    measured = asyncio.run(run(contender, int(n), url, json.loads(options)))
    Path(out).write_text(json.dumps(measured))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["burst"]:  # the in-process burst: default cadence vs the naive poller
        from burst import main as burst

        sys.exit(burst(sys.argv[2:]))
    if sys.argv[1:2] == ["burst-worker"]:
        from burst import worker as burst_worker

        sys.exit(burst_worker(sys.argv[2:]))
    sys.exit(worker() if sys.argv[1:2] == ["worker"] else main())
