"""``begateway-async demo``: a realistic mix of payment flows against the simulator on loopback.

The simulator runs in a child process (a core of its own, like a real
gateway); the real client pushes the flows through it and the summary joins
what the client saw with the simulator's own counters. The 3-D Secure
payments name a ``notification_url`` served here by a `WebhookEndpoint`:
their customers pass 3-D Secure two seconds after the bank answers, and
`Gateway.follow` learns the final status from the simulator's signed
notification.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import attrs

from begateway_async import (
    Authorization,
    Capture,
    CreditCard,
    Gateway,
    GatewayError,
    Job,
    JobFailed,
    Notification,
    Payment,
    Payout,
    Refund,
    Transaction,
    Void,
    WebhookEndpoint,
)

from ._console import Progress, table
from ._logs import console_telemetry

__all__ = ["demo"]

SHOP_ID = "361"
SECRET = "b8647b68898b084b836474ed8d61ffe117c9a01168d867f24953b776ddcb134d"  # noqa: S105 - the public demo shop

GOOD = "4200000000000000"
DECLINED = "4005550000000019"
THREE_DS = "4012000000001006"

#: Flow kind → weight in the mix.
MIX: dict[str, int] = {
    "payment": 30,
    "declined payment": 8,
    "3-D Secure payment": 6,
    "authorization + capture": 16,
    "authorization + void": 8,
    "payment + refund": 14,
    "payout": 8,
    "expired card (validation)": 5,
    "over-refund (validation)": 5,
}


class _Run:
    """What the flows record: per job, its kind, outcome, and timings."""

    def __init__(self) -> None:
        self.outcomes: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.latency: list[float] = []
        self.finished: dict[str, float] = {}  # request_id -> epoch when the waiter woke
        self.errors = 0
        self.followed = 0  # incomplete (3-D Secure) payments followed to a final status
        self.notifications: Counter[str] = Counter()

    async def noted(self, notification: Notification) -> None:
        """`WebhookEndpoint`'s ``on_notification``: count what came."""
        self.notifications["received"] += 1
        self.notifications["ended a job"] += notification.resolved
        self.notifications["woke a follow"] += notification.followed

    async def job(self, kind: str, submit: Awaitable[Job[Transaction]]) -> Transaction | None:
        started = time.time()
        job: Job[Transaction] | None = None
        try:
            job = await submit
            tx = await job
        except JobFailed as exc:
            self.outcomes[kind][f"JobFailed {exc.status_code}"] += 1
            tx = None
        except GatewayError as exc:
            self.outcomes[kind][type(exc).__name__] += 1
            self.errors += 1
            tx = None
        else:
            self.outcomes[kind][str(tx.status)] += 1  # type: ignore[union-attr]
        now = time.time()
        if job is not None:
            self.finished[job.request_id] = now
            self.latency.append(now - started)
        return tx


def _card(number: str, rng: random.Random, *, year: int = 2030) -> CreditCard:
    return CreditCard(
        number=number,
        exp_month=rng.randint(1, 9),
        exp_year=year,
        verification_value="123",
        holder="Demo Customer",
    )


def _flows(  # noqa: C901 - one small closure per kind of flow
    run: _Run, gw: Gateway, rng: random.Random, notify: str
) -> dict[str, Callable[[int], Awaitable[None]]]:
    def payment(
        n: int, number: str = GOOD, *, year: int = 2030, notification_url: str | None = None
    ) -> Payment:
        return Payment(
            amount=100 + n,  # distinct amounts: the gateway's 30 s duplicate check stays quiet
            currency="USD",
            description=f"Demo order {n}",
            tracking_id=f"demo-{n}",
            credit_card=_card(number, rng, year=year),
            notification_url=notification_url,
            test=True,
        )

    async def simple(kind: str, request: Any) -> Transaction | None:
        return await run.job(kind, gw.submit(request))

    async def pay(n: int) -> None:
        await simple("payment", payment(n))

    async def declined(n: int) -> None:
        await simple("declined payment", payment(n, DECLINED))

    async def three_ds(n: int) -> None:
        kind = "3-D Secure payment"
        tx = await simple(kind, payment(n, THREE_DS, notification_url=notify))
        if tx is not None and tx.incomplete:  # the customer is at the 3-D Secure page
            try:
                final = await gw.follow(tx, within=120.0)
            except GatewayError as exc:
                run.outcomes[kind][type(exc).__name__] += 1
                run.errors += 1
            else:
                run.outcomes[kind][str(final.status)] += 1
                run.followed += 1
            run.outcomes[kind]["incomplete"] -= 1

    async def expired(n: int) -> None:
        await simple("expired card (validation)", payment(n, year=2010))

    async def authorize_then(n: int, kind: str, follow: type[Capture | Void]) -> None:
        request = Authorization(**attrs.asdict(payment(n), recurse=False))
        tx = await simple(kind, request)
        if tx is not None and tx.successful and tx.uid:
            await simple(kind, follow(parent_uid=tx.uid, amount=request.amount))

    async def capture(n: int) -> None:
        await authorize_then(n, "authorization + capture", Capture)

    async def void(n: int) -> None:
        await authorize_then(n, "authorization + void", Void)

    async def refund_after(n: int, kind: str, *, over: bool) -> None:
        request = payment(n)
        tx = await simple(kind, request)
        if tx is not None and tx.successful and tx.uid:
            amount = request.amount * 2 if over else request.amount // 2
            await simple(kind, Refund(parent_uid=tx.uid, amount=amount, reason="customer request"))

    async def refund(n: int) -> None:
        await refund_after(n, "payment + refund", over=False)

    async def over_refund(n: int) -> None:
        await refund_after(n, "over-refund (validation)", over=True)

    async def payout(n: int) -> None:
        await simple(
            "payout",
            Payout(
                amount=100 + n,
                currency="USD",
                description=f"Demo payout {n}",
                tracking_id=f"demo-payout-{n}",
                recipient_credit_card=_card(GOOD, rng),
                test=True,
            ),
        )

    return {
        "payment": pay,
        "declined payment": declined,
        "3-D Secure payment": three_ds,
        "authorization + capture": capture,
        "authorization + void": void,
        "payment + refund": refund,
        "payout": payout,
        "expired card (validation)": expired,
        "over-refund (validation)": over_refund,
    }


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - our loopback simulator
        return json.load(answer)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _drive(url: str, args: argparse.Namespace, run: _Run, telemetry: dict[str, Any]) -> float:
    rng = random.Random(args.seed)  # noqa: S311 - a demo mix, not cryptography
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=args.flows)
    progress = Progress(args.flows, "flows")
    limiter = anyio.CapacityLimiter(args.concurrency)
    from begateway_async.testing import serve_here  # noqa: PLC0415 - the simulator extra

    started = time.perf_counter()
    key = _get_json(f"{url}/_simulator/public_key")["public_key"]
    gateway = Gateway(url, SHOP_ID, SECRET, webhook_key=key, **telemetry)
    endpoint = WebhookEndpoint(gateway, on_notification=run.noted)
    # The shop opens first and closes last: the Gateway drains while it takes notifications.
    async with serve_here(endpoint) as shop, gateway as gw:
        flows = _flows(run, gw, rng, f"{shop}/begateway/notify")

        async def one(n: int, kind: str) -> None:
            async with limiter:
                before = run.errors
                await flows[kind](n)
                progress.advance(failed=run.errors > before)

        async with anyio.create_task_group() as tg:
            for n, kind in enumerate(kinds):
                tg.start_soon(one, n, kind)
    progress.close()
    return time.perf_counter() - started


def _report(url: str, args: argparse.Namespace, run: _Run, wall: float, cpu: float) -> str:
    stats = _get_json(f"{url}/_simulator/stats")
    jobs = _get_json(f"{url}/_simulator/jobs")
    queries = sum(1 for job in jobs.values() if job["operation"] == "status_query")
    notes = run.notifications
    followed = (
        f"{run.followed} ({notes['received']} notifications: {notes['woke a follow']} woke a "
        f"follow, {notes['ended a job']} ended a job; {queries} status queries)"
    )
    lags = [
        woke - jobs[rid]["ready_at"]
        for rid, woke in run.finished.items()
        if rid in jobs and jobs[rid]["ready_at"] is not None
    ]
    columns = ["successful", "failed", "incomplete", "JobFailed 422"]
    others = sorted({o for c in run.outcomes.values() for o in c} - set(columns))
    counts = [[run.outcomes[kind][c] for c in columns + others] for kind in MIX]
    rows: list[list[object]] = [
        [kind, sum(row), *row] for kind, row in zip(MIX, counts, strict=True)
    ]
    totals = [sum(column) for column in zip(*counts, strict=True)]
    rows.append(["all", sum(totals), *totals])
    n_jobs = stats["jobs"]
    lines = [
        "",
        f"begateway-async demo: {args.flows} flows, {n_jobs} jobs, simulator at {url}",
        f"processing time: lognormal, median {args.median:g} s, p99 {args.p99:g} s",
        "",
        table(["flow (jobs)", "jobs", *columns, *others], rows),
        "",
        table(
            ["measure", "value"],
            [
                [
                    "HTTP requests per job (simulator)",
                    f"{stats['requests_total'] / max(1, n_jobs):.2f}",
                ],
                ["  submits / status / result polls", _split(stats)],
                ["latency submit→result p50 / p90 / p99", _triple(run.latency)],
                ["detection lag bank done→caller p50 / p99", _pair(lags)],
                ["wall time", f"{wall:.1f} s"],
                ["jobs per second", f"{n_jobs / wall:.0f}"],
                ["client CPU per job", f"{cpu / max(1, n_jobs) * 1000:.2f} ms"],
                ["3-D Secure followed to a final status", followed],
                ["errors other than the gateway's answers", str(run.errors)],
            ],
        ),
    ]
    return "\n".join(lines)


def _split(stats: dict[str, Any]) -> str:
    requests = stats["requests"]
    return (
        f"{requests.get('submit', 0)} / {requests.get('status', 0)} / {requests.get('result', 0)}"
    )


def _triple(values: list[float]) -> str:
    return " / ".join(f"{_percentile(values, q):.2f} s" for q in (50, 90, 99))


def _pair(values: list[float]) -> str:
    return " / ".join(f"{_percentile(values, q):.2f} s" for q in (50, 99))


def demo(args: argparse.Namespace) -> int:
    """Run the demo; print the summary table; 0 unless something other than the gateway failed."""
    from begateway_async.testing import spawn  # noqa: PLC0415 - the simulator extra

    arguments = ["--median", str(args.median), "--p99", str(args.p99), "--seed", str(args.seed)]
    arguments += ["--3ds-delay", "2"]  # the customer passes 3-D Secure 2 s after the bank answers
    run = _Run()
    spans: contextlib.AbstractContextManager[dict[str, Any]] = (
        console_telemetry() if args.otel == "console" else contextlib.nullcontext({})
    )
    with spans as telemetry, spawn(arguments) as url:
        print(f"simulator started at {url}; running {args.flows} flows", file=sys.stderr)  # noqa: T201
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        wall = anyio.run(_drive, url, args, run, telemetry)
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (
            cpu_after.ru_stime - cpu_before.ru_stime
        )
        print(_report(url, args, run, wall, cpu))  # noqa: T201
    return 1 if run.errors else 0
