"""Jobs: waiters, cancellation, timeouts, abandon, tokens and resume, as_completed, draining."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest

import begateway_async as bga
from fakes import BASE, SECRET, ack, payment, processing, transaction

pytestmark = pytest.mark.anyio

RESULT = f"{BASE}/async/result/r1"


def slow_result(router, clock, *, ready_at: float, request_id: str = "r1", uid: str = "u1"):
    """The result of ``request_id`` is ready at virtual time ``ready_at``."""

    def answer(request):
        if clock.monotonic() < ready_at:
            return httpx.Response(200, json=processing(request_id))
        return httpx.Response(200, json=transaction(uid))

    return router.get(f"{BASE}/async/result/{request_id}").mock(side_effect=answer)


def accept(router, *request_ids: str):
    return router.post("/async/transactions/payments").mock(
        side_effect=[httpx.Response(200, json=ack(r)) for r in request_ids]
    )


async def test_cancelling_a_waiter_leaves_the_job(open_gateway, router, clock):
    """A waiter that gives up (cancelled) does not stop the job nor disturb other waiters."""
    accept(router, "r1")
    slow_result(router, clock, ready_at=30)
    async with open_gateway() as gw:
        job = await gw.submit(payment())
        results = []

        async def patient():
            results.append(await job)

        async with anyio.create_task_group() as tg:
            tg.start_soon(patient)
            with anyio.CancelScope() as impatient:
                impatient.cancel()
                await job
            assert impatient.cancelled_caught
            assert not job.done()
        assert results[0].uid == "u1"
        assert job.done()


async def test_timeout_does_not_stop_the_job(open_gateway, router, clock):
    """result(timeout=...) raises JobTimeout on the Gateway's clock; the job goes on."""
    accept(router, "r1")
    slow_result(router, clock, ready_at=30)
    async with open_gateway() as gw:
        job = await gw.submit(payment())
        with pytest.raises(bga.JobTimeout) as info:
            await job.result(timeout=5)
        assert isinstance(info.value, TimeoutError)
        assert info.value.request_id == "r1"
        assert 5 <= clock.monotonic() < 6
        assert job.state is bga.JobState.PENDING
        tx = await job.result(timeout=60)
        assert tx.uid == "u1"


async def test_zero_timeout_on_a_done_job(open_gateway, router):
    """A finished job answers result(timeout=0) at once."""
    accept(router, "r1")
    router.get(RESULT).respond(200, json=transaction())
    async with open_gateway() as gw:
        job = await gw.submit(payment())
        await job
        assert (await job.result(timeout=0)).uid == "u1"


async def test_abandon_stops_polling(open_gateway, router, clock):
    """abandon() wakes the waiters with JobAbandoned and no poll follows."""
    accept(router, "r1")
    route = slow_result(router, clock, ready_at=1e9)
    async with open_gateway() as gw:
        job = await gw.submit(payment())
        await clock.sleep(10)
        polls = route.call_count
        assert polls > 0
        job.abandon()
        with pytest.raises(bga.JobAbandoned):
            await job
        await clock.sleep(1000)
        assert route.call_count == polls
        assert job.state is bga.JobState.ABANDONED
        assert gw.pending == 0


async def test_token_round_trip_in_another_gateway(open_gateway, router, clock):
    """A token from one Gateway resumes the job in another; the first one's waiters are told."""
    accept(router, "r1")
    slow_result(router, clock, ready_at=100)
    async with open_gateway(drain=False) as first:
        job = await first.submit(payment())
        token = job.token()
    with pytest.raises(bga.JobAbandoned):
        await job
    data = json.loads(token)
    assert data["v"] == 1
    assert data["request_id"] == "r1"
    assert data["tracking_id"] == "order-42"
    assert SECRET not in token
    async with open_gateway() as second:
        resumed = second.resume(token)
        assert resumed.created_at == job.created_at
        assert resumed.idempotency_key == job.idempotency_key
        assert second.resume(token) is resumed
        tx = await resumed
    assert tx.uid == "u1"


async def test_resumed_job_expires_by_its_creation_time(open_gateway, router, clock):
    """A resumed job keeps its creation time, so the 24 h rule still applies to it."""
    accept(router, "r1")
    router.get(RESULT).respond(404, json={"status": "unknown", "request_id": "r1"})
    async with open_gateway(drain=False) as first:
        job = await first.submit(payment())
        token = job.token()
    await clock.advance(86_400)
    async with open_gateway() as second:
        with pytest.raises(bga.JobExpired):
            await second.resume(token)


@pytest.mark.parametrize(
    ("token", "field"),
    [
        ("not json", "token"),
        (json.dumps({"type": "other"}), "token"),
        (json.dumps({"type": "begateway-async/job", "v": 99}), "token.v"),
        (json.dumps({"type": "begateway-async/job", "v": 1}), "token.gateway"),
    ],
)
async def test_bad_tokens(open_gateway, token, field):
    """A malformed token is refused with InvalidRequest naming what is wrong."""
    async with open_gateway() as gw:
        with pytest.raises(bga.InvalidRequest) as info:
            gw.resume(token)
    assert info.value.field == field


async def test_token_of_another_gateway(open_gateway, router):
    """A token of another gateway, or with URLs off this one, is refused."""
    accept(router, "r1")
    async with open_gateway(drain=False) as gw:
        token = (await gw.submit(payment())).token()
    data = json.loads(token)
    other = json.dumps({**data, "gateway": "https://gateway.other.test"})
    forged = json.dumps({**data, "request_id": "r2", "response_url": "https://evil.test/r2"})
    async with open_gateway() as gw:
        with pytest.raises(bga.InvalidRequest, match=r"token\.gateway"):
            gw.resume(other)
        with pytest.raises(bga.UnsafeURL):
            gw.resume(forged)
        status_off = json.dumps({**data, "request_id": "r3", "status_url": "https://evil.test/s"})
        with pytest.raises(bga.UnsafeURL):
            gw.resume(status_off)


async def test_as_completed_yields_in_finishing_order(open_gateway, router, clock):
    """as_completed yields each job as it finishes, the earliest first, done ones at once."""
    accept(router, "r1", "r2", "r3")
    slow_result(router, clock, ready_at=50, request_id="r1", uid="u1")
    slow_result(router, clock, ready_at=5, request_id="r2", uid="u2")
    slow_result(router, clock, ready_at=20, request_id="r3", uid="u3")
    async with open_gateway() as gw:
        jobs = [await gw.submit(payment()) for _ in range(3)]
        order = [(await job).uid async for job in gw.as_completed(jobs)]
        assert order == ["u2", "u3", "u1"]
        again = [(await job).uid async for job in gw.as_completed(jobs)]
        assert sorted(again) == ["u1", "u2", "u3"]


async def test_leaving_drains_pending_jobs(open_gateway, router, clock):
    """Leaving `async with` waits for every pending job by default."""
    accept(router, "r1")
    slow_result(router, clock, ready_at=40)
    async with open_gateway() as gw:
        job = await gw.submit(payment())
    assert job.done()
    assert (await job).uid == "u1"
    assert clock.monotonic() >= 40


async def test_leaving_without_drain_abandons(open_gateway, router, clock):
    """With drain=False, leaving abandons pending jobs (their tokens still resume them)."""
    accept(router, "r1")
    slow_result(router, clock, ready_at=40)
    async with open_gateway(drain=False) as gw:
        job = await gw.submit(payment())
    assert clock.monotonic() < 40
    with pytest.raises(bga.JobAbandoned, match="resume"):
        await job


async def test_an_error_in_the_block_does_not_wait(open_gateway, router, clock):
    """An exception inside `async with` skips draining; pending jobs are abandoned."""
    accept(router, "r1")
    slow_result(router, clock, ready_at=40)
    jobs = []

    async def fail_inside():
        async with open_gateway() as gw:
            jobs.append(await gw.submit(payment()))
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await fail_inside()
    job = jobs[0]
    assert job.state is bga.JobState.ABANDONED


async def test_gateway_must_be_open(router):
    """Submitting outside `async with` is a clear error, not a hang."""
    gw = bga.Gateway(BASE, 361, SECRET, transport=httpx.MockTransport(router.async_handler))
    with pytest.raises(bga.GatewayStateError, match="async with") as info:
        await gw.submit(payment())
    assert info.value.state == "new"


def test_gateway_arguments_are_validated():
    """Bad Gateway arguments raise InvalidRequest naming the argument; the secret is not echoed."""
    cases = [
        (lambda: bga.Gateway("ftp://gw.test", 1, SECRET), "base_url"),
        (lambda: bga.Gateway("http://gw.test", 1, SECRET), "base_url"),
        (lambda: bga.Gateway(f"https://361:{SECRET}@gw.test", 1, SECRET), "base_url"),
        (lambda: bga.Gateway(BASE, "", SECRET), "shop_id"),
        (lambda: bga.Gateway(BASE, 1, ""), "secret_key"),
        (lambda: bga.Gateway(BASE, 1, SECRET, poll={"factor": 2}), "poll"),
        (lambda: bga.Gateway(BASE, 1, SECRET, api_version=4), "api_version"),
        (lambda: bga.PollPolicy(factor=0.5), "PollPolicy.factor"),
        (lambda: bga.PollPolicy(target_lag=0), "PollPolicy.target_lag"),
        (lambda: bga.PollPolicy(lag_weight=-1.0), "PollPolicy.lag_weight"),
        (lambda: bga.Limits(polls_per_host=0), "Limits.polls_per_host"),
    ]
    for build, field in cases:
        with pytest.raises(bga.InvalidRequest) as info:
            build()
        assert info.value.field == field
        assert SECRET not in str(info.value)


def test_plain_http_is_allowed_on_loopback_only():
    """http:// is accepted for loopback hosts (the simulator) or with an explicit opt-in."""
    assert bga.Gateway("http://127.0.0.1:8080/", 1, SECRET).base_url == "http://127.0.0.1:8080"
    assert bga.Gateway("http://[::1]:8080", 1, SECRET).base_url == "http://[::1]:8080"
    assert (
        bga.Gateway("http://gw.lan", 1, SECRET, allow_insecure_http=True).base_url
        == "http://gw.lan"
    )
