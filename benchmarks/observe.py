"""What observability costs per job: unused (the default), and with each layer listening.

    python benchmarks/observe.py                  # 7 interleaved rounds of 4 000 jobs each
    python benchmarks/observe.py --jobs 500 --rounds 1 --out /tmp/x   # a smoke run

Jobs run in process on a `VirtualClock` (no waiting) against a minimal
transport that acknowledges every submit and answers every poll with the
result at once: the client's own work is all there is to measure, so the
layers' share is as large as it can be (over loopback it is a third of
this). Each round runs every condition once, in turn (each round starts
with the next one), ``jobs`` payments submitted at once; client CPU by
``time.process_time``. The figure per condition is the median over the
rounds; this machine's noise between two runs of one condition is several
per cent, so compare medians of many rounds, never one.

- ``off``: the `Observer`'s reports replaced by functions doing nothing,
  the nearest thing to a build without the layers (the baseline);
- ``unused``: the default: opentelemetry-api installed, no SDK, no log
  handler enabled below WARNING, no hook. **Target: under 3 % of a job's
  CPU.** The difference is below this machine's noise end to end, so it is
  measured directly too: the Observer's reports of one job (two requests
  and its end), repeated 200 000 times, against the ``unused`` job's CPU;
- ``hook``: ``on_event`` counting events;
- ``logs``: a handler at DEBUG on ``begateway_async`` that drops records;
- ``sdk``: an OpenTelemetry SDK with in-memory span and metric readers.

Output: ``benchmarks/results/observe.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx

import begateway_async as bga
from begateway_async import _observe
from begateway_async._clock import Timebase
from begateway_async.testing import VirtualClock

HERE = Path(__file__).resolve().parent
BASE = "https://gateway.bench"
SECRET = "s" * 64
RESULT = json.dumps(
    {"transaction": {"uid": "u1", "status": "successful", "type": "payment", "amount": 100,
                     "currency": "USD", "tracking_id": "bench", "test": True}}
).encode()  # fmt: skip


class Instant(httpx.AsyncBaseTransport):
    """Acknowledges every submit, answers every poll with the result."""

    def __init__(self) -> None:
        self.n = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """One answer, at once."""
        if request.method == "POST":
            self.n += 1
            rid = f"r{self.n}"
            ack = {"status": "processing", "request_id": rid,
                   "status_url": f"{BASE}/async/status/{rid}",
                   "response_url": f"{BASE}/async/result/{rid}"}  # fmt: skip
            return httpx.Response(200, json=ack)
        return httpx.Response(200, content=RESULT, headers={"content-type": "application/json"})


def _nothing(*_: object, **__: object) -> None:
    return None


@contextlib.contextmanager
def off() -> Iterator[dict[str, Any]]:
    """Every report of the Observer does nothing."""
    names = ("sending", "sent", "ended", "unsent", "internal", "paused", "resending", "notified")
    saved = {name: getattr(_observe.Observer, name) for name in names}
    for name in names:
        setattr(_observe.Observer, name, _nothing)
    try:
        yield {}
    finally:
        for name, method in saved.items():
            setattr(_observe.Observer, name, method)


@contextlib.contextmanager
def unused() -> Iterator[dict[str, Any]]:
    yield {}


@contextlib.contextmanager
def hook() -> Iterator[dict[str, Any]]:
    seen: list[int] = [0]

    def count(_: bga.Event) -> None:
        seen[0] += 1

    yield {"on_event": count}


@contextlib.contextmanager
def logs() -> Iterator[dict[str, Any]]:
    logger = logging.getLogger("begateway_async")
    handler = logging.NullHandler()
    handler.handle = lambda _: True  # type: ignore[method-assign]  # formats nothing
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield {}
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


@contextlib.contextmanager
def sdk() -> Iterator[dict[str, Any]]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    try:
        yield {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()


CONDITIONS: dict[str, Callable[[], contextlib.AbstractContextManager[dict[str, Any]]]] = {
    "off": off, "unused": unused, "hook": hook, "logs": logs, "sdk": sdk,
}  # fmt: skip


async def _jobs(n: int, options: dict[str, Any]) -> float:
    """CPU seconds for ``n`` payments submitted at once, through to their results."""
    clock = VirtualClock()
    card = bga.CreditCard(number="4200000000000000", exp_month="05", exp_year="2030")
    policy = bga.PollPolicy(adaptive=False)
    limits = bga.Limits(concurrent_submits=256)
    async with (
        clock.autojump(),
        bga.Gateway(BASE, 361, SECRET, transport=Instant(), clock=clock, poll=policy,
                    limits=limits, **options) as gw,
    ):  # fmt: skip
        payment = bga.Payment(amount=100, currency="USD", description="x", credit_card=card)
        started = time.process_time()
        jobs: list[bga.Job[Any]] = []
        async with anyio.create_task_group() as tg:

            async def submit() -> None:
                jobs.append(await gw.submit(payment))

            for _ in range(n):
                tg.start_soon(submit)
        for job in jobs:
            await job
        return time.process_time() - started


def _reports_per_job(n: int = 200_000) -> float:
    """µs per job of what the Observer is told when nothing listens (measured directly)."""
    timebase = Timebase(None)
    observer = _observe.Observer(timebase)
    job: bga.Job[Any] = bga.Job(
        gateway=BASE, timebase=timebase, request_id="r1", status_url=f"{BASE}/async/status/r1",
        response_url=f"{BASE}/async/result/r1", tracking_id=None, operation="payment",
        created_at=0.0, idempotency_key="k1",
    )  # fmt: skip
    entry = object()  # never looked at: nothing listens
    submit, poll = f"{BASE}/async/transactions/payments", f"{BASE}/async/result/r1"
    sending, sent, ended = observer.sending, observer.sent, observer.ended
    started = time.perf_counter()
    for _ in range(n):
        sent(sending("POST", submit, entry), 200, None)
        sent(sending("GET", poll, job), 200, None)
        ended(job)
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    cpu: dict[str, list[float]] = {name: [] for name in CONDITIONS}
    anyio.run(_jobs, 200, {})  # warm up: imports, caches
    names = list(CONDITIONS)
    for turn in range(args.rounds):
        for name in names[turn % len(names) :] + names[: turn % len(names)]:  # each goes first once
            condition = CONDITIONS[name]
            gc.collect()
            with condition() as options:
                cpu[name].append(anyio.run(_jobs, args.jobs, options) / args.jobs * 1e6)
    per_job = {name: statistics.median(values) for name, values in cpu.items()}
    base = per_job["off"]
    rows = [
        {"condition": name, "cpu_us_per_job": round(per_job[name], 1),
         "rounds": [round(v, 1) for v in cpu[name]],
         "over_off": round(per_job[name] / base - 1, 4)}
        for name in CONDITIONS
    ]  # fmt: skip
    print(f"{'condition':<10} {'µs/job':>8} {'over off':>9}   rounds")
    for row in rows:
        rounds = " ".join(f"{v:.0f}" for v in row["rounds"])
        cells = f"{row['condition']:<10} {row['cpu_us_per_job']:>8.1f} {row['over_off']:>+9.1%}"
        print(f"{cells}   {rounds}")
    reports = _reports_per_job()
    share = reports / per_job["unused"]
    print(
        f"unused: the Observer's reports of one job (2 requests and its end) take {reports:.2f} µs,"
        f" {share:.2%} of the job's {per_job['unused']:.0f} µs (target < 3 %)"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "jobs": args.jobs, "rounds": args.rounds, "rows": rows,
        "unused_reports_us_per_job": round(reports, 3), "unused_share": round(share, 5),
        "target": 0.03,
    }  # fmt: skip
    (args.out / "observe.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
