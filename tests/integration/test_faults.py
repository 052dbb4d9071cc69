"""Every fault switch of the simulator, and the client getting every job right through it."""

from __future__ import annotations

import random

import anyio
import pytest

import begateway_async as bga
from begateway_async.testing import DEMO_SHOPS, Fault, Faults, Simulator, SimulatorTransport
from fakes import payment

pytestmark = pytest.mark.anyio

BASE = "https://gateway.simulator.test"


async def run_jobs(simulator, clock, count: int = 40, **options):
    """Submit ``count`` payments at once and collect each job's outcome."""
    gateway = bga.Gateway(
        BASE,
        361,
        DEMO_SHOPS["361"],
        transport=SimulatorTransport(simulator),
        clock=clock,
        rng=random.Random(3),
        **options,
    )
    outcomes: dict[int, object] = {}

    async def one(n: int) -> None:
        try:
            outcomes[n] = await (await gateway.submit(payment(100 + n, tracking_id=f"order-{n}")))
        except bga.GatewayError as exc:
            outcomes[n] = exc

    async with clock.autojump(), gateway, anyio.create_task_group() as tg:
        for n in range(count):
            tg.start_soon(one, n)
    return outcomes


@pytest.mark.parametrize(
    "faults",
    [
        Faults(too_early=Fault(rate=1.0)),
        Faults(html_error=Fault(rate=0.3)),
        Faults(drop=Fault(rate=0.3)),
        Faults(truncate=Fault(rate=0.3)),
        Faults(slow=Fault(rate=0.3, delay=7.0)),
        Faults(throttle=Fault(rate=0.1, retry_after=5.0)),
        Faults(unavailable=Fault(rate=0.1, retry_after=5.0)),
    ],
    ids=["too_early", "html_error", "drop", "truncate", "slow", "throttle", "unavailable"],
)
async def test_every_job_survives_the_fault(simulator, clock, faults):
    """Under each passing fault, every job still gets its transaction, and none is paid twice."""
    simulator.faults = faults
    outcomes = await run_jobs(simulator, clock, limits=bga.Limits(submit_attempts=8))
    assert len(outcomes) == 40
    bad = {n: o for n, o in outcomes.items() if not isinstance(o, bga.Transaction)}
    assert bad == {}
    assert all(o.successful for o in outcomes.values())  # type: ignore[union-attr]
    assert simulator.stats.transactions == 40
    assert sum(faults.counts().values()) > 0


async def test_too_early_answers_425(simulator, clock):
    """The too_early switch answers 425 for a running task."""
    simulator.faults = Faults(too_early=Fault(rate=1.0))
    await run_jobs(simulator, clock, count=3)
    assert simulator.stats.statuses[425] > 0
    assert simulator.stats.statuses[200] > 0


async def test_throttle_pauses_the_client(simulator, clock):
    """A scripted 429 with Retry-After holds the client's polls for that long."""
    simulator.faults = Faults(throttle=Fault(script=[True], on={"result"}, retry_after=30.0))
    simulator.processing = 0.0
    started = clock.monotonic()
    outcomes = await run_jobs(simulator, clock, count=1)
    assert isinstance(outcomes[0], bga.Transaction)
    assert clock.monotonic() - started >= 30.0
    assert simulator.stats.statuses[429] == 1


async def test_internal_error_is_served_once(simulator, clock):
    """The internal_error switch fails the task with the documented 500 body, served once."""
    simulator.faults = Faults(internal_error=Fault(script=[True, False]))
    outcomes = await run_jobs(simulator, clock, count=2)
    failures = [o for o in outcomes.values() if isinstance(o, bga.JobFailed)]
    assert len(failures) == 1
    assert failures[0].status_code == 500
    assert failures[0].body == {"message": "We're sorry, but something went wrong"}
    assert not isinstance(failures[0], bga.Rejected)  # processing failed; the request was fine
    assert simulator.stats.statuses[500] == 1


async def test_garbled_submit_answer_is_resent_not_repaid(simulator, clock):
    """A submit whose acknowledgement is garbled is re-sent with its RequestID: one transaction."""
    simulator.faults = Faults(truncate=Fault(script=[True, True], on={"submit"}))
    outcomes = await run_jobs(simulator, clock, count=1)
    assert isinstance(outcomes[0], bga.Transaction)
    assert simulator.stats.transactions == 1
    assert simulator.stats.replays == 2


def test_fault_scripts_then_rates():
    """A script is used first, in order; then the rate decides; off endpoints never fire."""
    fault = Fault(script=[True, False, True], rate=0.0, on={"result"})
    rng = random.Random(1)
    assert [fault.fires("result", rng) for _ in range(5)] == [True, False, True, False, False]
    assert not fault.fires("submit", rng)
    assert fault.fired == 2
    with pytest.raises(ValueError, match="unknown endpoints"):
        Fault(on={"everything"})
    with pytest.raises(ValueError, match="between 0 and 1"):
        Fault(rate=2.0)


def test_simulator_repr_has_no_secret():
    """The simulator's repr names shops, never their secrets."""
    assert DEMO_SHOPS["361"] not in repr(Simulator())
