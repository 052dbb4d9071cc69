"""A Gateway's life (opened once, closed for good), as_completed stopped early, internal queries."""

from __future__ import annotations

import gc
import weakref

import anyio
import httpx
import pytest

import begateway_async as bga
from fakes import BASE, ack, payment, transaction

pytestmark = pytest.mark.anyio

RESULT = f"{BASE}/async/result/r1"


async def test_a_closed_gateway_sends_nothing_and_says_so(open_gateway, router):
    """After `async with`, is_open is False and every call raises GatewayStateError unsent."""
    posts = router.post("/async/transactions/payments").respond(200, json=ack())
    router.get(RESULT).respond(200, json=transaction(status="incomplete"))
    async with open_gateway() as gw:
        assert gw.is_open
        job = await gw.submit(payment())
        incomplete = await job
        token = job.token()
    assert not gw.is_open
    assert "closed" in repr(gw)
    calls = router.calls.call_count
    attempts = [
        lambda: gw.submit(payment()),
        lambda: gw.payment(payment()),
        gw.resume_all,
        lambda: gw.deliver(b"{}", {}),
        lambda: gw.follow(incomplete),
    ]
    for attempt in attempts:
        with pytest.raises(bga.GatewayStateError, match="closed") as info:
            await attempt()
        assert info.value.state == "closed"
    with pytest.raises(bga.GatewayStateError, match="closed"):
        gw.resume(token)
    assert router.calls.call_count == calls  # nothing reached the gateway
    assert posts.call_count == 1


async def test_a_gateway_opens_once(open_gateway, router):
    """Entering an open Gateway, or a closed one, is refused with a clear message."""
    async with open_gateway() as gw:
        with pytest.raises(bga.GatewayStateError, match="already open"):
            await gw.__aenter__()
        assert gw.is_open  # the refusal changed nothing
    with pytest.raises(bga.GatewayStateError, match="opens once") as info:
        async with gw:
            pass
    assert info.value.state == "closed"
    assert isinstance(info.value, RuntimeError)  # as httpx.AsyncClient's refusal is


async def test_as_completed_stopped_early_leaves_nothing_to_collect(open_gateway, router, clock):
    """A loop that stops early leaves only a callback on the jobs left, gone when they end."""
    router.post("/async/transactions/payments").mock(
        side_effect=[httpx.Response(200, json=ack(r)) for r in ("r1", "r2")]
    )

    def answer(uid: str, ready_at: float):
        def reply(request: httpx.Request) -> httpx.Response:
            if clock.monotonic() < ready_at:
                return httpx.Response(200, json={"status": "processing"})
            return httpx.Response(200, json=transaction(uid))

        return reply

    router.get(RESULT).mock(side_effect=answer("u1", 5.0))
    router.get(f"{BASE}/async/result/r2").mock(side_effect=answer("u2", 50.0))
    gc.disable()  # freed by reference counting, or not at all
    try:
        async with open_gateway() as gw:
            first, second = [await gw.submit(payment()) for _ in range(2)]
            stream = gw.as_completed([first, second])
            async for job in stream:
                assert job is first
                break
            alive = weakref.ref(stream)
            del stream, job
            assert alive() is not None  # the pending job's callback holds it
            assert (await second).uid == "u2"
            assert alive() is None  # gone with the callback, without the collector
    finally:
        gc.enable()


async def test_as_completed_as_a_context_drops_its_callbacks(open_gateway, router, clock):
    """Leaving `async with gw.as_completed(...)` stops watching the jobs left; they go on."""
    router.post("/async/transactions/payments").respond(200, json=ack())
    router.get(RESULT).mock(
        side_effect=[httpx.Response(200, json={"status": "processing"})] * 3
        + [httpx.Response(200, json=transaction())]
    )
    async with open_gateway() as gw:
        job = await gw.submit(payment())
        async with gw.as_completed([job]) as stream:
            assert "1 of 1" in repr(stream)
        assert not job._callbacks  # nothing of the stream is left on the job
        assert [j async for j in stream] == []  # closed: it yields nothing more
        assert (await job).uid == "u1"


async def test_lookups_and_follow_ups_are_not_user_submits(open_gateway, router, clock):
    """The library's own queries are not journalled and do not wait for the submit slots."""
    journal = bga.MemoryJournal(keep_finished=True)
    release = anyio.Event()
    posted: list[httpx.Request] = []

    async def slow_post(request: httpx.Request) -> httpx.Response:
        posted.append(request)
        if len(posted) == 2:  # the second payment holds the only submit slot
            await release.wait()
        return httpx.Response(200, json=ack(f"r{len(posted)}"))

    router.post("/async/transactions/payments").mock(side_effect=slow_post)
    router.get(RESULT).respond(200, json=transaction(status="incomplete"))
    router.get("/async/transactions/u1").respond(200, json=ack("q1"))
    router.get(f"{BASE}/async/result/q1").respond(200, json=transaction(status="successful"))
    router.get(f"{BASE}/async/result/r2").respond(200, json=transaction("u2"))
    limits = bga.Limits(concurrent_submits=1)
    async with open_gateway(journal=journal, limits=limits) as gw:
        incomplete = await gw.payment(payment())
        async with anyio.create_task_group() as tg:
            tg.start_soon(gw.submit, payment(tracking_id="order-43"))
            await clock.sleep(1.0)  # the second submit now waits for its answer, in its slot
            assert len(posted) == 2
            final = await gw.follow(incomplete)
            assert final.successful  # the status query did not wait for the slot
            assert not release.is_set()
            release.set()
    entries = await journal.entries(gw.base_url, gw.shop_id)
    assert [e.operation for e in entries] == ["payment", "payment"]


async def test_a_tracking_id_lookup_is_not_journalled(open_gateway, router):
    """After a lost reply, the lookup by tracking id leaves only the payment's entry."""
    journal = bga.MemoryJournal(keep_finished=True)
    router.post("/async/transactions/payments").respond(200, json=ack())
    router.get(RESULT).mock(
        side_effect=[
            httpx.ReadTimeout("read timed out"),
            httpx.Response(404, json={"status": "unknown"}),
        ]
    )
    lookup = router.get("/async/v2/transactions/tracking_id/order-42").respond(
        200, json={"transactions": []}
    )
    async with open_gateway(journal=journal) as gw:
        with pytest.raises(bga.JobLost):
            await gw.payment(payment())
    assert lookup.call_count == 1
    (entry,) = await journal.entries(gw.base_url, gw.shop_id)
    assert entry.operation == "payment"
    assert entry.outcome is not None
    assert entry.outcome.error == "JobLost"
