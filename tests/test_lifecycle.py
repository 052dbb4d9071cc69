"""A Gateway's life (opened once, closed for good), as_completed stopped early, internal queries."""

from __future__ import annotations

import gc
import json
import weakref

import anyio
import httpx
import pytest
import respx
import sniffio

import begateway_async as bga
from fakes import BASE, SECRET, SHOP_ID, ack, notification, payment, transaction

pytestmark = pytest.mark.anyio

RESULT = f"{BASE}/async/result/r1"
LOOKUP = "/async/v2/transactions/tracking_id/order-42"


class Spy(bga.MemoryJournal):
    """A journal that keeps everything and notes the key of every end it is given."""

    def __init__(self) -> None:
        super().__init__(keep_finished=True)
        self.ended: list[str] = []

    async def finished(self, key: str, outcome: bga.JournalOutcome) -> None:
        """Note the key, then record as usual."""
        self.ended.append(key)
        await super().finished(key, outcome)


def lost_reply(router: respx.MockRouter) -> None:
    """The first poll's reply is lost, the second finds the task unknown: a lookup follows."""
    router.post("/async/transactions/payments").respond(200, json=ack())
    router.get(RESULT).mock(
        side_effect=[
            httpx.ReadTimeout("read timed out"),
            httpx.Response(404, json={"status": "unknown"}),
        ]
    )


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


async def test_open_and_aclose_work_without_async_with(router, clock):
    """For an app without a lifespan: `open`, use, `aclose` (which drains, as leaving does)."""
    router.post("/async/transactions/payments").respond(200, json=ack())
    router.get(f"{BASE}/async/result/r1").respond(200, json=transaction())
    gateway = bga.Gateway(
        BASE, SHOP_ID, SECRET, clock=clock, transport=httpx.MockTransport(router.async_handler)
    )
    await gateway.aclose()  # never opened: nothing to close, and it can still open
    async with clock.autojump():
        assert await gateway.open() is gateway
        assert gateway.is_open
        job = await gateway.submit(payment())
        await gateway.aclose()  # waits for the pending job
    assert job.done
    assert (await job).status == "successful"
    assert not gateway.is_open
    await gateway.aclose()  # again: nothing more to do
    with pytest.raises(bga.GatewayStateError, match="opens once"):
        await gateway.open()


async def test_open_under_a_deadline_is_refused_before_anything_starts(router, clock):
    """`open()` in `fail_after` would tie the Gateway's loops to that scope: a clear refusal."""
    gateway = bga.Gateway(
        BASE, SHOP_ID, SECRET, clock=clock, transport=httpx.MockTransport(router.async_handler)
    )
    with anyio.fail_after(60), pytest.raises(bga.GatewayStateError, match="under a deadline"):
        await gateway.open()
    assert not gateway.is_open
    with anyio.fail_after(60):  # `async with` nests properly inside one
        async with gateway:
            assert gateway.is_open


async def test_a_second_close_waits_for_the_one_under_way(router, clock):
    """Another task's `aclose` while the opener's drains waits for it; both see it closed."""
    router.post("/async/transactions/payments").respond(200, json=ack())
    router.get(f"{BASE}/async/result/r1").respond(200, json=transaction())
    gateway = bga.Gateway(
        BASE, SHOP_ID, SECRET, clock=clock, transport=httpx.MockTransport(router.async_handler)
    )
    closed: list[bool] = []

    async def close() -> None:
        await gateway.aclose()
        closed.append(gateway.is_open)

    async with clock.autojump(), anyio.create_task_group() as tg:
        await gateway.open()
        job = await gateway.submit(payment())
        tg.start_soon(close)  # runs once this task waits in its own close
        await close()
    assert closed == [False, False]  # each returned only once the Gateway was closed
    assert (await job).status == "successful"  # drained before it closed


async def test_only_the_opener_starts_the_close(router, clock):
    """Its loops run in the opener's task group: another task's first `aclose` is refused."""
    gateway = bga.Gateway(
        BASE, SHOP_ID, SECRET, clock=clock, transport=httpx.MockTransport(router.async_handler)
    )
    refused: list[str] = []

    async def close() -> None:
        with pytest.raises(bga.GatewayStateError, match="task that opened it") as caught:
            await gateway.aclose()
        refused.append(str(caught.value))

    await gateway.open()
    async with anyio.create_task_group() as tg:
        tg.start_soon(close)
    assert refused
    assert gateway.is_open  # still open, and closes from its own task
    await gateway.aclose()
    assert not gateway.is_open


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
    journal = Spy()
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
    assert set(journal.ended) == {e.key for e in entries}  # no end of a query either


async def test_a_tracking_id_lookup_is_not_journalled(open_gateway, router):
    """After a lost reply, the lookup by tracking id leaves only the payment's entry."""
    journal = Spy()
    lost_reply(router)
    lookup = router.get(LOOKUP).respond(200, json={"transactions": []})
    async with open_gateway(journal=journal) as gw:
        with pytest.raises(bga.JobLost):
            await gw.payment(payment())
    assert lookup.call_count == 1
    (entry,) = await journal.entries(gw.base_url, gw.shop_id)
    assert entry.operation == "payment"
    assert entry.outcome is not None
    assert entry.outcome.error == "JobLost"
    assert journal.ended == [entry.key]  # the lookup's own answer was not journalled


@pytest.mark.parametrize("how", ["notification", "abandon"])
async def test_an_end_during_the_lookup_is_not_overwritten(open_gateway, router, how):
    """A job that a notification (or abandon) ends while its lookup is out keeps that end."""
    journal = Spy()
    lost_reply(router)
    looking, answer = anyio.Event(), anyio.Event()

    async def slow_lookup(request: httpx.Request) -> httpx.Response:
        looking.set()
        await answer.wait()
        return httpx.Response(200, json={"transactions": []})

    router.get(LOOKUP).mock(side_effect=slow_lookup)
    async with open_gateway(journal=journal) as gw:
        job = await gw.submit(payment())
        await looking.wait()
        if how == "notification":
            note = await gw.deliver(*notification())
            assert note.resolved
        else:
            job.abandon()
        answer.set()
        ended = job.exception()
    (entry,) = await journal.entries(gw.base_url, gw.shop_id)
    if how == "notification":
        assert ended is None
        assert (await job).uid == "u1"
        assert entry.outcome is not None
        assert entry.outcome.kind == "result"  # not overwritten by the lookup's JobLost
    else:
        assert isinstance(ended, bga.JobAbandoned)
        assert entry.outcome is None  # unfinished: `resume_all` picks it up


async def test_a_job_ended_by_hand_leaves_the_gateway(open_gateway, router):
    """`Job.set_exception` stops the polls and lets the Gateway drain."""
    router.post("/async/transactions/payments").respond(200, json=ack())
    polled = router.get(RESULT).respond(200, json={"status": "processing"})
    async with open_gateway() as gw:
        job = await gw.submit(payment())
        assert gw.pending == 1
        assert job.set_exception(bga.JobTimeout("given up", request_id="r1", tracking_id=None))
        assert gw.pending == 0
        polls = polled.call_count
    assert polled.call_count == polls  # leaving did not wait for it, nor poll it again
    with pytest.raises(bga.JobTimeout, match="given up"):
        await job


async def test_a_submit_answered_while_the_gateway_closes_is_abandoned(open_gateway, router):
    """The answer to a submit in flight at the close gives an abandoned job, not a hang."""
    sent, answer = anyio.Event(), anyio.Event()

    async def slow_ack(request: httpx.Request) -> httpx.Response:
        sent.set()
        await answer.wait()
        return httpx.Response(200, json=ack())

    router.post("/async/transactions/payments").mock(side_effect=slow_ack)
    jobs: list[bga.Job[bga.Transaction]] = []

    async def submit(gw: bga.Gateway) -> None:
        jobs.append(await gw.submit(payment()))

    async with anyio.create_task_group() as tg:
        async with open_gateway() as gw:
            tg.start_soon(submit, gw)
            await sent.wait()
        answer.set()  # the gateway answers after the Gateway closed
    (job,) = jobs
    assert job.state is bga.JobState.ABANDONED
    assert gw.pending == 0
    assert json.loads(job.token())["request_id"] == "r1"  # another Gateway can resume it


async def test_a_notification_of_an_immediate_answer_ends_no_other_job(open_gateway, router):
    """The uid a submit's immediate answer carried can never end another pending job."""
    router.post("/async/transactions/payments").mock(
        side_effect=[httpx.Response(200, json=transaction()), httpx.Response(200, json=ack())]
    )
    router.get(RESULT).respond(200, json={"status": "processing"})
    async with open_gateway(drain=False) as gw:
        answered = await gw.submit(payment())
        assert answered.done()
        pending = await gw.submit(payment())  # the same tracking id and type
        note = await gw.deliver(*notification())  # the notification of the first one's uid
        assert note.job is None
        assert not note.resolved
        assert not pending.done()


async def test_resume_all_goes_on_when_the_journal_cannot_record_an_end(open_gateway, clock):
    """An expired entry whose end cannot be journalled still gives its job; nothing raises."""

    class Failing(bga.MemoryJournal):
        async def finished(self, key: str, outcome: bga.JournalOutcome) -> None:  # noqa: ARG002
            raise bga.JournalError("disk full")

    journal = Failing()
    entry = bga.JournalEntry(
        key="k1",
        gateway=BASE,
        shop_id=str(SHOP_ID),
        operation="payment",
        method="POST",
        path="/async/transactions/payments",
        body=None,
        headers=(),
        tracking_id="order-42",
        tag="line-1",
        created_at=clock() - 25 * 3600,
    )
    await journal.intent(entry)
    await journal.acknowledged("k1", "r1", f"{BASE}/async/status/r1", RESULT)
    async with open_gateway(journal=journal) as gw:
        (job,) = await gw.resume_all()
    assert job.tag == "line-1"
    with pytest.raises(bga.JobExpired):
        await job


async def test_as_completed_shared_by_two_tasks_and_closed_from_a_third(
    open_gateway, router, clock
):
    """Two tasks reading one stream each get a job; a close from elsewhere ends a waiting read."""
    router.post("/async/transactions/payments").mock(
        side_effect=[httpx.Response(200, json=ack(r)) for r in ("r1", "r2", "r3")]
    )
    for request_id, ready in (("r1", 5.0), ("r2", 9.0)):
        router.get(f"{BASE}/async/result/{request_id}").mock(
            side_effect=lambda _, ready=ready: httpx.Response(
                200,
                json=transaction() if clock.monotonic() >= ready else {"status": "processing"},
            )
        )
    router.get(f"{BASE}/async/result/r3").respond(200, json={"status": "processing"})
    async with open_gateway(drain=False) as gw:
        jobs = [await gw.submit(payment()) for _ in range(3)]
        stream = gw.as_completed(jobs)
        got: list[bga.Job[bga.Transaction]] = []
        stopped = anyio.Event()

        async def read_one() -> None:
            got.append(await anext(stream))

        async def read_rest() -> None:
            got.extend([job async for job in stream])
            stopped.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_one)
            tg.start_soon(read_one)
        assert sorted(j.request_id for j in got) == ["r1", "r2"]
        with anyio.fail_after(10):  # a bound in real time: a read left waiting fails here
            async with anyio.create_task_group() as tg:
                tg.start_soon(read_rest)  # r3 never ends: this read waits
                await clock.sleep(60.0)
                await stream.aclose()
        assert stopped.is_set()
        assert len(got) == 2


async def test_resume_all_goes_on_past_an_entry_it_cannot_handle(open_gateway, router, clock):
    """An entry that makes the library fail ends its job (JobAbandoned); the next is picked up."""
    router.post("/async/transactions/payments").respond(200, json=ack())
    router.get(RESULT).respond(200, json=transaction())
    journal = bga.MemoryJournal(keep_finished=True)
    for key, headers in (("broken", (("X-Odd", 5),)), ("fine", ())):
        await journal.intent(
            bga.JournalEntry(
                key=key,
                gateway=BASE,
                shop_id=str(SHOP_ID),
                operation="payment",
                method="POST",
                path="/async/transactions/payments",
                body=b"{}",
                headers=headers,  # type: ignore[arg-type]  # a journal that holds the wrong type
                tracking_id="order-42",
                tag=key,
                created_at=clock(),
            )
        )
    async with open_gateway(journal=journal) as gw:
        broken, fine = await gw.resume_all()
        with pytest.raises(bga.JobAbandoned, match="TypeError: the entry's headers are not text"):
            await broken
        assert (await fine).uid == "u1"
    assert [e.key for e in await journal.unfinished(BASE, str(SHOP_ID))] == ["broken"]


async def test_a_notification_whose_journalling_fails_leaves_the_poll_to_end_the_job(
    open_gateway, router: respx.MockRouter, clock
):
    """The poll waits while a notification is journalled; that failing, the poll's end stands."""
    holding, gate = anyio.Event(), anyio.Event()

    class Failing(bga.MemoryJournal):
        async def notified(self, notification: bga.JournalNotification) -> None:  # noqa: ARG002
            holding.set()
            await gate.wait()
            raise bga.JournalError("disk full")

    router.post("/async/transactions/payments").respond(200, json=ack())
    router.get(RESULT).respond(404, json={"status": "unknown", "request_id": "r1"})
    refused: list[BaseException] = []

    async def deliver(gw: bga.Gateway) -> None:
        try:
            await gw.deliver(*notification())
        except bga.JournalError as exc:
            refused.append(exc)

    async with open_gateway(journal=Failing(), autojump=False) as gw:
        job = await gw.submit(payment())
        async with anyio.create_task_group() as tg:
            tg.start_soon(deliver, gw)
            await holding.wait()  # the notification holds the job while it is journalled
            await clock.advance(600.0)  # the poll finds the task unknown meanwhile
            gate.set()
        with anyio.fail_after(10), pytest.raises(bga.JobLost):
            await job
    assert len(refused) == 1


async def test_asyncio_is_named_for_sniffio_in_the_polls_not_in_the_callers_task(
    open_gateway, router, anyio_backend_name
):
    """On asyncio the polls and a submit's request name the library for sniffio; the caller not.

    (No look-up of the running task per anyio call.) Trio is left as it names itself.
    """
    variable = sniffio.current_async_library_cvar
    outer = variable.set(None)  # as under asyncio.run (the test runner names the library)
    named: dict[str, str | None] = {}

    def seen(kind: str, response: httpx.Response):
        def record(_: httpx.Request) -> httpx.Response:
            named[kind] = variable.get()
            assert sniffio.current_async_library() == anyio_backend_name
            return response

        return record

    router.post("/async/transactions/payments").mock(
        side_effect=seen("submit", httpx.Response(200, json=ack()))
    )
    router.get(RESULT).mock(side_effect=seen("poll", httpx.Response(200, json=transaction())))
    try:
        async with open_gateway() as gw:
            tx = await (await gw.submit(payment()))
            assert variable.get() is None  # the caller's task: as it was
    finally:
        variable.reset(outer)
    assert tx.status == "successful"
    expected = "asyncio" if anyio_backend_name == "asyncio" else None
    assert named == {"submit": expected, "poll": expected}
