"""The shared journal on PostgreSQL: jobs/s, round trips per job (1, 2, 4 workers), wake-up lag.

    python benchmarks/shared_journal.py                 # 2 000 jobs per row, 300 wake-ups
    python benchmarks/shared_journal.py --jobs 500 --wakeups 50

A throwaway cluster is started on loopback (`testing.postgres_cluster`).

- **Throughput**: W worker processes (1, 2, 4), each a Gateway with its own
  `PostgresJournal` on the same database, share ``--jobs`` payments; each
  runs against an in-process simulator (processing 50 ms), so the figures
  are the client's and the journal's. Round trips are the journal's
  transactions (one each: intent, acknowledgement, end; heartbeats apart).
- **Wake-up lag**: Gateway A awaits a payment whose polls are far off;
  Gateway B takes its notification (`Gateway.deliver`). The lag is from
  the start of B's ``deliver`` to A's ``await`` returning: the matching,
  the recorded end, ``NOTIFY``, A's ``LISTEN`` and A's settling. A makes no
  poll for it (counted).

Results go to ``--out``/shared_journal.json (asyncio) or shared_journal-trio.json.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import multiprocessing
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx

import begateway_async as bga
from begateway_async.testing import (
    DEMO_SHOPS,
    Fixed,
    Simulator,
    SimulatorTransport,
    postgres_cluster,
)

BASE, SHOP, SECRET = "https://gw.bench", "361", DEMO_SHOPS["361"]
FAST = bga.PollPolicy(first_delay=0.05, max_delay=0.2, adaptive=False)


def payment(i: int) -> bga.Payment:
    card = bga.CreditCard(number="4200000000000000", verification_value="123", holder="J Doe",
                          exp_month=1, exp_year=2030)  # fmt: skip
    return bga.Payment(amount=100 + i, currency="USD", description=f"order {i}",
                       tracking_id=f"bench-{uuid.uuid4().hex[:12]}", credit_card=card)  # fmt: skip


async def _work(dsn: str, schema: str, jobs: int, start: float) -> dict[str, float]:
    simulator = Simulator(processing=Fixed(0.05))
    journal = bga.PostgresJournal(dsn, schema=schema)
    gw = bga.Gateway(BASE, SHOP, SECRET, transport=SimulatorTransport(simulator), poll=FAST,
                     journal=journal, allow_insecure_http=True)  # fmt: skip
    await anyio.sleep(max(0.0, start - time.time()))  # every worker starts at once
    began = time.perf_counter()
    async with gw:
        limiter = anyio.Semaphore(200)

        async def one(i: int) -> None:
            async with limiter:
                await (await gw.submit(payment(i)))

        async with anyio.create_task_group() as tg:
            for i in range(jobs):
                tg.start_soon(one, i)
    wall = time.perf_counter() - began
    await journal.aclose()
    return {"wall": wall, "trips": journal.transactions, "jobs": jobs}


def _worker(args: tuple[str, str, int, float, str]) -> dict[str, float]:
    dsn, schema, jobs, start, backend = args
    return anyio.run(_work, dsn, schema, jobs, start, backend=backend)


def throughput(dsn: str, workers: int, jobs: int, backend: str) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    start = time.time() + 2.0
    share = [(dsn, schema, jobs // workers, start, backend) for _ in range(workers)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        rows = pool.map(_worker, share)
    wall = max(row["wall"] for row in rows)
    done = sum(row["jobs"] for row in rows)
    return {
        "workers": workers,
        "jobs": done,
        "jobs_per_s": round(done / wall, 1),
        "journal_round_trips_per_job": round(sum(row["trips"] for row in rows) / done, 2),
    }


def _notification(tracking_id: str) -> tuple[bytes, dict[str, str]]:
    now = dt.datetime.now(dt.UTC).isoformat()
    body = {"transaction": {"uid": uuid.uuid4().hex, "status": "successful", "type": "payment",
                            "amount": 100, "currency": "USD", "tracking_id": tracking_id,
                            "created_at": now, "message": "ok", "test": True}}  # fmt: skip
    credentials = base64.b64encode(f"{SHOP}:{SECRET}".encode()).decode()
    return json.dumps(body).encode(), {"authorization": f"Basic {credentials}"}


async def _lag(dsn: str, rounds: int) -> dict[str, Any]:
    schema = f"lag_{uuid.uuid4().hex[:8]}"
    polls = 0

    def gateway(request: httpx.Request) -> httpx.Response:
        nonlocal polls
        if request.method == "POST":
            rid = uuid.uuid4().hex
            urls = {"status_url": f"{BASE}/async/status/{rid}",
                    "response_url": f"{BASE}/async/result/{rid}"}  # fmt: skip
            return httpx.Response(200, json={"status": "processing", "request_id": rid, **urls})
        polls += 1
        return httpx.Response(200, json={"status": "processing"})

    slow = bga.PollPolicy(first_delay=3600.0, max_delay=3600.0, adaptive=False)
    lags: list[float] = []
    options: dict[str, Any] = {"transport": httpx.MockTransport(gateway), "poll": slow,
                               "webhook_poll": slow}  # fmt: skip
    journals = bga.PostgresJournal(dsn, schema=schema), bga.PostgresJournal(dsn, schema=schema)
    async with (
        bga.Gateway(BASE, SHOP, SECRET, journal=journals[0], **options) as a,
        bga.Gateway(BASE, SHOP, SECRET, journal=journals[1], **options) as b,
    ):
        for _ in range(rounds):
            request = payment(0)
            job = await a.submit(request)
            body, headers = _notification(request.tracking_id or "")
            began = time.perf_counter()
            note = await b.deliver(body, headers)
            with anyio.fail_after(10):
                await job
            lags.append(time.perf_counter() - began)
            assert note.job is None
    for journal in journals:
        await journal.aclose()
    ms = sorted(x * 1000 for x in lags)
    return {
        "rounds": rounds,
        "lag_ms_p50": round(statistics.median(ms), 2),
        "lag_ms_p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
        "polls_by_the_awaiting_worker": polls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--wakeups", type=int, default=300)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    with postgres_cluster() as dsn:
        rows = [throughput(dsn, w, args.jobs, args.backend) for w in (1, 2, 4)]
        for row in rows:
            print(json.dumps(row))
        lag = anyio.run(_lag, dsn, args.wakeups, backend=args.backend)
        print(json.dumps(lag))
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"backend": args.backend, "throughput": rows, "wakeup": lag}
    name = "shared_journal.json" if args.backend == "asyncio" else "shared_journal-trio.json"
    (args.out / name).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
