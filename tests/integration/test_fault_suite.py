"""The fault-injection suite over loopback: every fault at once, a clock jump, duplicate keys.

Each case asserts that no result is lost, that no transaction is made twice
(the simulator's books), and that where the gateway really failed the job
ends with the right typed error. The short version runs with the suite;
``nox -s soak`` runs it long (``BEGATEWAY_SOAK=1``: more jobs, more kills).
With ``BEGATEWAY_FAULT_REPORT=path`` the figures are written there as JSON.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import anyio
import pytest

import begateway_async as bga
from begateway_async.testing import (
    DEMO_SHOPS,
    Fault,
    Faults,
    LogNormal,
    Simulator,
    SimulatorTransport,
    VirtualClock,
    serve,
)
from fakes import payment

pytestmark = pytest.mark.anyio

SOAK = os.environ.get("BEGATEWAY_SOAK") == "1"
SECRET = DEMO_SHOPS["361"]
SORRY = {"message": "We're sorry, but something went wrong"}


def _report(case: str, figures: dict[str, Any]) -> None:
    target = os.environ.get("BEGATEWAY_FAULT_REPORT")
    if not target:
        return
    path = Path(target)
    report = json.loads(path.read_text()) if path.exists() else {}
    report[case] = figures
    path.write_text(json.dumps(report, indent=1))


def _payment(n: int) -> bga.Payment:
    return payment(1000 + n, description=f"Storm {n}", tracking_id=f"storm-{n}")


async def test_every_fault_at_once_over_loopback(tmp_path: Path):
    """Every fault at once over real sockets: nothing lost, nothing paid twice.

    Resets, HTML 5xx, 429/503 storms, answers slower than the read timeout,
    truncated JSON, 425s and failed tasks.
    """
    count = 2000 if SOAK else 150
    faults = Faults(
        too_early=Fault(rate=0.2),
        drop=Fault(rate=0.05),
        html_error=Fault(rate=0.05),
        truncate=Fault(rate=0.05),
        slow=Fault(rate=0.03, delay=1.0),  # longer than the client's read timeout below
        throttle=Fault(rate=0.03, retry_after=0.2),
        unavailable=Fault(rate=0.03, retry_after=0.2),
        internal_error=Fault(rate=0.03),
    )
    simulator = Simulator(processing=LogNormal.from_percentiles(0.2, 1.0), faults=faults, seed=11)
    outcomes: dict[int, object] = {}
    with serve(simulator) as url:
        async with bga.Gateway(
            url,
            361,
            SECRET,
            http="httpx",
            journal=tmp_path / "storm.db",
            timeouts=bga.Timeouts(read=0.4),
            limits=bga.Limits(submit_attempts=10),
            poll=bga.PollPolicy(first_delay=0.1, max_delay=1.0),
            rng=random.Random(2),
        ) as gw:

            async def one(n: int) -> None:
                try:
                    outcomes[n] = await (await gw.submit(_payment(n)))
                except bga.GatewayError as exc:
                    outcomes[n] = exc

            with anyio.fail_after(300):
                async with anyio.create_task_group() as tg:
                    for n in range(count):
                        tg.start_soon(one, n)
            unfinished = await gw.journal.unfinished(gw.base_url, gw.shop_id)
    paid = [o for o in outcomes.values() if isinstance(o, bga.Transaction)]
    failed = [o for o in outcomes.values() if isinstance(o, bga.JobFailed)]
    lost = [o for o in outcomes.values() if isinstance(o, bga.JobLost)]
    other = [o for o in outcomes.values() if not isinstance(o, bga.Transaction | bga.JobError)]
    fired = faults.counts()
    _report(
        "every_fault_at_once",
        {
            "jobs": count,
            "faults": fired,
            "paid": len(paid),
            "failed_500_once": len(failed),
            "lost_one_shot_body_reply": len(lost),
            "results_lost": count - len(outcomes) + len(unfinished),
            "transactions": simulator.stats.transactions,
            "replays": simulator.stats.replays,
        },
    )
    assert len(outcomes) == count
    assert other == []
    assert all(tx.successful for tx in paid)
    # Where the gateway really failed, the whole 500 body reached the caller...
    assert all((f.status_code, f.body) == (500, SORRY) for f in failed)
    # ...unless the reply carrying it was itself cut: then JobLost says so.
    # and the tracking-id lookup confirms no transaction was made.
    assert all(exc.after_lost_reply and not exc.transactions for exc in lost)
    assert len(paid) + len(failed) + len(lost) == count
    assert simulator.stats.transactions == len(paid)  # none twice
    assert unfinished == []  # every outcome is in the journal
    assert all(fired[name] > 0 for name in ("drop", "html_error", "truncate", "slow"))


async def test_the_clock_jumping_past_24_hours_expires_every_pending_job():
    """A day passes between two polls (a suspended laptop, a stopped VM): JobExpired, no repay."""
    clock = VirtualClock()
    simulator = Simulator(clock=clock, processing=60.0)
    count = 500 if SOAK else 50
    async with bga.Gateway(
        "https://gateway.simulator.test",
        361,
        SECRET,
        transport=SimulatorTransport(simulator),
        clock=clock,
        poll=bga.PollPolicy(first_delay=30.0, adaptive=False),
    ) as gw:
        jobs = [await gw.submit(_payment(n)) for n in range(count)]
        await clock.jump(25 * 3600)
        async with clock.autojump():
            for job in jobs:
                with pytest.raises(bga.JobExpired):
                    await job
    assert simulator.stats.requests["submit"] == count
    assert simulator.stats.transactions == count  # made once, at the bank; never re-sent


async def test_duplicate_request_ids_make_one_task():
    """Two submits with the same RequestID (a retry by the caller): one task, one transaction."""
    clock = VirtualClock()
    simulator = Simulator(clock=clock, processing=2.0)
    async with (
        clock.autojump(),
        bga.Gateway(
            "https://gateway.simulator.test",
            361,
            SECRET,
            transport=SimulatorTransport(simulator),
            clock=clock,
        ) as gw,
    ):
        first = await gw.submit(_payment(1), idempotency_key="11111111-2222-4333-8444-555555555555")
        again = await gw.submit(_payment(1), idempotency_key="11111111-2222-4333-8444-555555555555")
        assert again is first
        tx = await first
    assert tx.successful
    assert simulator.stats.transactions == 1
    assert simulator.stats.replays == 1
