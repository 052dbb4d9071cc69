"""The Gateway end to end over a respx fake: every decision-table row as the caller sees it."""

from __future__ import annotations

import logging

import anyio
import anyio.lowlevel
import httpx
import pytest

import begateway_async as bga
from begateway_async.testing import DEMO_SHOPS, Simulator, SimulatorTransport, VirtualClock
from fakes import BASE, SECRET, ack, payment, processing, transaction, unknown

pytestmark = pytest.mark.anyio

DAY = 86_400.0
RESULT = f"{BASE}/async/result/r1"
STATUS = f"{BASE}/async/status/r1"


def accept(router, request_id="r1", **extra):
    return router.post("/async/transactions/payments").respond(200, json=ack(request_id, **extra))


# --- the happy paths ----------------------------------------------------------------------


async def test_processing_then_result(open_gateway, router):
    """200 processing and 425 mean running; the result resolves the job with a Transaction."""
    accept(router)
    result = router.get(RESULT).mock(
        side_effect=[
            httpx.Response(200, json=processing()),
            httpx.Response(425, json={"status": "processing"}),
            httpx.Response(200, json=transaction()),
        ]
    )
    status = router.get(STATUS)
    async with open_gateway() as gw:
        job = await gw.submit(payment())
        assert (job.request_id, job.status_url, job.response_url) == ("r1", STATUS, RESULT)
        tx = await job
    assert isinstance(tx, bga.Transaction)
    assert tx.successful
    assert result.call_count == 3
    assert job.polls == 3
    assert not status.called  # response_url by default: one request per poll
    assert job.state is bga.JobState.DONE


async def test_backoff_spaces_the_polls(open_gateway, router, clock):
    """Polls follow the policy: first delay, then growing gaps, never past the cap."""
    accept(router)
    seen: list[float] = []

    def answer(request):
        seen.append(clock.monotonic())
        return httpx.Response(200, json=processing() if len(seen) < 12 else transaction())

    router.get(RESULT).mock(side_effect=answer)
    policy = bga.PollPolicy(first_delay=1.0, factor=2.0, max_delay=20.0, jitter=0.0)
    async with open_gateway(poll=policy) as gw:
        await gw.run(payment())
    gaps = [round(b - a, 6) for a, b in zip([0.0, *seen], seen, strict=False)]
    assert gaps == [1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0, 20.0, 20.0, 20.0, 20.0, 20.0]


async def test_status_first(open_gateway, router):
    """status_first: GET status_url until completed, then its response_url at once."""
    accept(router)
    status = router.get(STATUS).mock(
        side_effect=[
            httpx.Response(200, json=processing()),
            httpx.Response(
                200, json={"status": "completed", "request_id": "r1", "response_url": RESULT}
            ),
        ]
    )
    result = router.get(RESULT).respond(200, json=transaction())
    async with open_gateway(poll=bga.PollPolicy(status_first=True)) as gw:
        tx = await (await gw.submit(payment()))
    assert tx.uid == "u1"
    assert status.call_count == 2
    assert result.call_count == 1


async def test_completed_ack_fetches_at_once(open_gateway, router, clock):
    """An acknowledgement that is already 'completed' is fetched without waiting."""
    accept(router, status="completed")
    router.get(RESULT).respond(200, json=transaction())
    async with open_gateway() as gw:
        await gw.run(payment())
        assert clock.monotonic() == 0.0


async def test_immediate_answer(open_gateway, router):
    """A POST answered with the transaction itself gives a job that is already done."""
    router.post("/async/transactions/payments").respond(200, json=transaction())
    async with open_gateway() as gw:
        job = await gw.submit(payment())
        assert job.done()
        assert (await job).uid == "u1"
        with pytest.raises(bga.NotResumable, match="no task to resume"):
            job.token()


async def test_incomplete_result_resolves(open_gateway, router):
    """An incomplete (3-D Secure) result resolves the job; the caller follows redirect_url."""
    accept(router)
    router.get(RESULT).respond(
        200, json=transaction(status="incomplete", redirect_url=f"{BASE}/process/u1")
    )
    async with open_gateway() as gw:
        tx = await gw.payment(payment())
    assert tx.incomplete
    assert tx.redirect_url == f"{BASE}/process/u1"


async def test_declined_is_a_transaction(open_gateway, router):
    """A declined payment resolves with status failed, not an exception."""
    accept(router)
    router.get(RESULT).respond(200, json=transaction(status="failed"))
    async with open_gateway() as gw:
        tx = await gw.payment(payment())
    assert tx.failed


async def test_v3_result(open_gateway, router):
    """A flat v3 result resolves like a classic one."""
    accept(router)
    router.get(RESULT).respond(200, json={"uid": "u3", "status": "successful", "code": "S.0000"})
    async with open_gateway(api_version=3) as gw:
        tx = await gw.payment(payment())
    assert (tx.uid, tx.code) == ("u3", "S.0000")


async def test_typed_shortcuts(open_gateway, router):
    """Tracking-id query → list, balance query → Balance, uid query → Transaction."""
    router.get("/async/v2/transactions/tracking_id/order-42").respond(200, json=ack("q1"))
    router.get(f"{BASE}/async/result/q1").respond(
        200, json={"transactions": [transaction("u2")["transaction"]]}
    )
    router.post("/async/balance").respond(200, json=ack("q2"))
    router.get(f"{BASE}/async/result/q2").respond(
        200, json={"status": "successful", "result": {"amount": 5, "currency": "USD"}}
    )
    router.get("/async/transactions/u9").respond(200, json=ack("q3"))
    router.get(f"{BASE}/async/result/q3").respond(200, json=transaction("u9"))
    async with open_gateway() as gw:
        txs = await gw.transactions_by_tracking_id("order-42")
        balance = await gw.balance(bga.BalanceQuery(currency="USD"))
        tx = await gw.transaction("u9")
    assert [t.uid for t in txs] == ["u2"]
    assert (balance.amount, balance.currency) == (5, "USD")
    assert tx.uid == "u9"


async def test_malformed_result(open_gateway, router):
    """A 200 answer that is not a transaction fails the job with MalformedResponse and the body."""
    accept(router)
    router.get(RESULT).respond(
        200, json={"transaction": {"uid": "u1", "amount": 1.5, "status": "x"}}
    )
    async with open_gateway() as gw:
        job = await gw.submit(payment())
        with pytest.raises(bga.MalformedResponse) as info:
            await job
    assert info.value.body["transaction"]["amount"] == 1.5


# --- one-shot error bodies ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            422,
            {
                "message": "Amount must be greater than 0",
                "errors": {"amount": ["must be greater than 0"]},
            },
        ),
        (422, {"response": {"message": "Token does not exist.", "errors": {}}}),
        (422, {"code": "E.1025", "friendly_message": "Invalid request params", "message": "m"}),
        (500, {"message": "We're sorry, but something went wrong"}),
    ],
    ids=["v2", "nested", "v3", "sorry"],
)
async def test_one_shot_error_reaches_every_waiter(open_gateway, router, status, body):
    """A non-200 error body is read from the gateway once and given whole to every waiter."""
    accept(router)
    result = router.get(RESULT).mock(
        side_effect=[httpx.Response(status, json=body), unknown(), unknown()]
    )
    errors: list[BaseException] = []

    async def wait(job):
        try:
            await job
        except bga.JobFailed as exc:
            errors.append(exc)

    async with open_gateway() as gw:
        job = await gw.submit(payment())
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(wait, job)
        with pytest.raises(bga.JobFailed):
            await job  # and once more, after the fact
    assert result.call_count == 1
    assert len(errors) == 3
    assert all(e is errors[0] for e in errors)
    failure = errors[0]
    assert isinstance(failure, bga.JobFailed)
    assert (failure.status_code, failure.body) == (status, body)
    assert failure.tracking_id == "order-42"
    assert failure.message


async def test_error_fields_are_exposed(open_gateway, router):
    """JobFailed gives the message, the per-field errors and the v3 code of the body."""
    accept(router)
    body = {
        "code": "E.1025",
        "message": "Currency can't be blank.",
        "errors": {"currency": ["can't be blank"]},
    }
    router.get(RESULT).respond(422, json=body)
    async with open_gateway() as gw:
        with pytest.raises(bga.JobFailed) as info:
            await gw.payment(payment())
    assert info.value.message == "Currency can't be blank."
    assert info.value.errors == {"currency": ["can't be blank"]}
    assert info.value.code == "E.1025"


# --- unknown: lost or expired -------------------------------------------------------------


async def test_unknown_before_24h_is_lost(open_gateway, router):
    """404 unknown before 24 h: JobLost, with the tracking_id to reconcile by."""
    accept(router)
    router.get(RESULT).mock(return_value=unknown())
    async with open_gateway() as gw:
        with pytest.raises(bga.JobLost) as info:
            await gw.payment(payment())
    assert info.value.tracking_id == "order-42"
    assert info.value.request_id == "r1"
    assert not info.value.after_lost_reply


async def test_unknown_after_24h_is_expired(open_gateway, router, clock):
    """404 unknown at 24 h after creation (by the injected clock): JobExpired."""
    accept(router)
    created = clock()

    def answer(request):
        if clock() < created + DAY:
            return httpx.Response(200, json=processing())
        return unknown()

    router.get(RESULT).mock(side_effect=answer)
    async with open_gateway(poll=bga.PollPolicy(max_delay=3600.0)) as gw:
        with pytest.raises(bga.JobExpired):
            await gw.payment(payment())
    assert clock() >= created + DAY


async def test_outage_past_24h_expires(open_gateway, router, clock):
    """A job that only ever sees transient failures ends JobExpired once 24 h have passed."""
    accept(router)
    route = router.get(RESULT).respond(502, text="<html>Bad Gateway</html>")
    async with open_gateway(poll=bga.PollPolicy(max_delay=600.0)) as gw:
        job = await gw.submit(payment())
        with pytest.raises(bga.JobExpired):
            await job
    assert clock.monotonic() >= DAY
    assert route.call_count > 100
    assert job.last_error == "unreadable HTTP 502 answer"


@pytest.mark.parametrize(
    ("failure", "lost"),
    [
        (httpx.ReadTimeout("read timed out"), True),
        (httpx.RemoteProtocolError("peer closed connection"), True),
        (httpx.ConnectError("refused"), False),
        (httpx.ConnectTimeout("connect timed out"), False),
    ],
)
async def test_lost_reply_then_unknown(open_gateway, router, failure, lost):
    """A sent poll whose reply was lost, then 404: JobLost says a one-shot body may be gone.

    After a lost reply the tracking-id query tells what the gateway holds.
    """
    accept(router)
    router.get(RESULT).mock(side_effect=[failure, unknown()])
    lookup = router.get("/async/v2/transactions/tracking_id/order-42").mock(
        return_value=httpx.Response(200, json={"transactions": []})
    )
    async with open_gateway() as gw:
        with pytest.raises(bga.JobLost) as info:
            await gw.payment(payment())
    assert info.value.after_lost_reply is lost
    assert lookup.call_count == (1 if lost else 0)
    assert info.value.transactions == (() if lost else None)
    if lost:
        assert "error body is gone" in str(info.value)


async def test_lost_reply_lookup_finds_the_transaction(open_gateway, router):
    """When the tracking-id query finds the transaction, JobLost carries it."""
    accept(router)
    router.get(RESULT).mock(side_effect=[httpx.ReadTimeout("read timed out"), unknown()])
    router.get("/async/v2/transactions/tracking_id/order-42").mock(
        return_value=httpx.Response(200, json={"transactions": [transaction()["transaction"]]})
    )
    async with open_gateway() as gw:
        with pytest.raises(bga.JobLost) as info:
            await gw.payment(payment())
    (tx,) = info.value.transactions or ()
    assert tx.uid == transaction()["transaction"]["uid"]


# --- transient failures and throttling ----------------------------------------------------


async def test_transient_failures_are_retried(open_gateway, router):
    """502, 504, HTML 500, truncated JSON, resets and read timeouts are retried until the result."""
    accept(router)
    result = router.get(RESULT).mock(
        side_effect=[
            httpx.Response(502, text="<html>Bad Gateway</html>"),
            httpx.Response(504),
            httpx.Response(500, text="<html><h1>Internal Server Error</h1></html>"),
            httpx.Response(200, content=b'{"transaction": {"uid": "u1", "sta'),
            httpx.RemoteProtocolError("peer closed connection"),
            httpx.ReadTimeout("read timed out"),
            httpx.Response(200, json=transaction()),
        ]
    )
    async with open_gateway() as gw:
        job = await gw.submit(payment())
        tx = await job
    assert tx.successful
    assert result.call_count == 7
    assert job.last_error == "ReadTimeout: read timed out"


async def test_retry_after_pauses_the_whole_host(open_gateway, router, clock):
    """A 429 with Retry-After holds every job's polls to the host until it passes."""
    times: dict[str, list[float]] = {"r1": [], "r2": []}
    router.post("/async/transactions/payments").mock(
        side_effect=[httpx.Response(200, json=ack("r1")), httpx.Response(200, json=ack("r2"))]
    )

    def answer(request, request_id):
        times[request_id].append(clock.monotonic())
        if request_id == "r1" and len(times["r1"]) == 1:
            return httpx.Response(429, headers={"Retry-After": "60"})
        if clock.monotonic() < 60:
            return httpx.Response(200, json=processing(request_id))
        return httpx.Response(200, json=transaction(request_id))

    router.get(url__regex=rf"{BASE}/async/result/(?P<request_id>\w+)").mock(side_effect=answer)
    policy = bga.PollPolicy(first_delay=1.0, jitter=0.0)
    async with open_gateway(poll=policy) as gw:
        first = await gw.submit(payment())
        await clock.sleep(0.5)
        second = await gw.submit(payment())  # first poll due at 1.5, inside the pause
        await first
        await second
    assert times["r1"] == [1.0, 61.0]
    assert times["r2"] == [61.0]


async def test_retry_after_is_capped(open_gateway, router, clock):
    """An absurd Retry-After is capped by the policy's max_retry_after."""
    accept(router)
    router.get(RESULT).mock(
        side_effect=[
            httpx.Response(503, headers={"Retry-After": "86400"}),
            httpx.Response(200, json=transaction()),
        ]
    )
    policy = bga.PollPolicy(first_delay=1.0, jitter=0.0, max_retry_after=120.0)
    async with open_gateway(poll=policy) as gw:
        await gw.payment(payment())
    assert clock.monotonic() == 121.0


async def test_credentials_refused_while_polling(open_gateway, router):
    """A 401 on a poll fails the job with RequestRejected (the task may still exist)."""
    accept(router)
    router.get(RESULT).respond(401, json={"message": "Access denied"})
    journal = bga.MemoryJournal(keep_finished=True)
    async with open_gateway(journal=journal) as gw:
        with pytest.raises(bga.RequestRejected) as info:
            await gw.payment(payment())
    assert info.value.status_code == 401
    assert not isinstance(info.value, bga.Rejected)  # the task may exist, and be charged
    (entry,) = await journal.unfinished(gw.base_url, gw.shop_id)  # resumed with the right ones
    assert entry.acknowledged


# --- origins and secrets ------------------------------------------------------------------


async def test_foreign_result_url_is_refused(open_gateway, router):
    """An acknowledgement pointing at another origin raises UnsafeURL; nothing goes there."""
    accept(router, response_url="https://evil.test/async/result/r1")
    evil = router.route(host="evil.test").respond(200, json=transaction())
    async with open_gateway() as gw:
        with pytest.raises(bga.UnsafeURL) as info:
            await gw.submit(payment())
    assert not evil.called
    assert info.value.tracking_id == "order-42"
    assert gw.pending == 0


async def test_foreign_status_url_falls_back(open_gateway, router, caplog):
    """A status_url off the gateway origin is ignored; the job polls its response_url."""
    accept(router, status_url="https://evil.test/async/status/r1")
    evil = router.route(host="evil.test").respond(200, json=processing())
    router.get(RESULT).respond(200, json=transaction())
    async with open_gateway(poll=bga.PollPolicy(status_first=True)) as gw:
        job = await gw.submit(payment())
        await job
    assert not evil.called
    assert job.status_url == RESULT
    assert "status_url off the gateway origin" in caplog.text


async def test_foreign_url_in_completed_status(open_gateway, router):
    """A 'completed' status naming a foreign response_url fails the job; it is never requested."""
    accept(router)
    router.get(STATUS).respond(
        200, json={"status": "completed", "response_url": "http://169.254.169.254/latest"}
    )
    metadata = router.route(host="169.254.169.254").respond(200)
    async with open_gateway(poll=bga.PollPolicy(status_first=True)) as gw:
        with pytest.raises(bga.UnsafeURL):
            await gw.payment(payment())
    assert not metadata.called


async def test_relative_urls_are_joined(open_gateway, router):
    """Path-only task URLs are taken on the gateway's origin."""
    accept(router, status_url="/async/status/r1", response_url="/async/result/r1")
    router.get(RESULT).respond(200, json=transaction())
    async with open_gateway() as gw:
        job = await gw.submit(payment())
        await job
    assert job.response_url == RESULT


async def test_missing_urls_use_the_documented_ones(open_gateway, router):
    """An acknowledgement without URLs is polled at the documented /async/result/{id}."""
    router.post("/async/transactions/payments").respond(
        200, json={"status": "processing", "request_id": "r1"}
    )
    router.get(RESULT).respond(200, json=transaction())
    async with open_gateway() as gw:
        assert (await gw.payment(payment())).uid == "u1"


async def test_secret_never_shown(open_gateway, router, caplog):
    """The secret key appears in no repr, exception text, log line or token."""
    caplog.set_level(logging.DEBUG)
    router.post("/async/transactions/payments").mock(
        side_effect=[
            httpx.Response(401, json={"message": "Access denied"}),
            httpx.ReadTimeout("timed out"),
            httpx.ReadTimeout("timed out"),
            httpx.ReadTimeout("timed out"),
            httpx.Response(200, json=ack()),
        ]
    )
    router.get(RESULT).respond(422, json={"message": "bad"})
    texts: list[str] = []
    async with open_gateway() as gw:
        texts.append(repr(gw))
        for error in (bga.RequestRejected, bga.SubmitIndeterminate):
            with pytest.raises(error) as info:
                await gw.submit(payment())
            texts += [str(info.value), repr(info.value)]
        job = await gw.submit(payment())
        texts += [repr(job), job.token()]
        with pytest.raises(bga.JobFailed) as failed:
            await job
        texts += [str(failed.value), repr(failed.value)]
    texts.append(caplog.text)
    assert caplog.text  # the scenario did log
    assert not [t for t in texts if SECRET in t]


# --- submits ------------------------------------------------------------------------------


async def test_indeterminate_submit_is_resent_with_the_same_request_id(open_gateway, router):
    """A POST with an unknown outcome is re-sent, bounded, with the same RequestID."""
    route = router.post("/async/transactions/payments").mock(
        side_effect=[
            httpx.ReadTimeout("timed out"),
            httpx.Response(502, text="<html>Bad Gateway</html>"),
            httpx.Response(200, json=ack()),
        ]
    )
    router.get(RESULT).respond(200, json=transaction())
    async with open_gateway() as gw:
        job = await gw.submit(payment())
        await job
    keys = [call.request.headers["requestid"] for call in route.calls]
    assert len(keys) == 3
    assert len(set(keys)) == 1
    assert job.idempotency_key == keys[0]


async def test_indeterminate_submit_gives_up_with_the_tracking_id(open_gateway, router):
    """After the bounded attempts, SubmitIndeterminate names the tracking_id and the RequestID."""
    route = router.post("/async/transactions/payments").mock(
        side_effect=httpx.RemoteProtocolError("peer closed connection")
    )
    async with open_gateway(limits=bga.Limits(submit_attempts=4)) as gw:
        with pytest.raises(bga.SubmitIndeterminate) as info:
            await gw.submit(payment(), idempotency_key="key-1")
    assert route.call_count == 4
    assert info.value.tracking_id == "order-42"
    assert info.value.idempotency_key == "key-1"
    assert {c.request.headers["requestid"] for c in route.calls} == {"key-1"}


async def test_unreachable_gateway_is_a_transport_error(open_gateway, router):
    """When no attempt left this machine, the error says nothing was sent."""
    router.post("/async/transactions/payments").mock(side_effect=httpx.ConnectError("refused"))
    async with open_gateway() as gw:
        with pytest.raises(bga.TransportError, match="nothing was sent"):
            await gw.submit(payment())


async def test_throttled_submit_is_rejected_after_the_attempts(open_gateway, router, clock):
    """A submit throttled on every attempt waits Retry-After between them, then is refused."""
    route = router.post("/async/transactions/payments").respond(429, headers={"Retry-After": "5"})
    async with open_gateway() as gw:
        with pytest.raises(bga.RequestRejected) as info:
            await gw.submit(payment())
    assert info.value.status_code == 429
    assert route.call_count == 3
    assert clock.monotonic() == 10.0


async def test_refused_submit(open_gateway, router):
    """A 422 on the POST raises RequestRejected with the parsed errors; no job exists."""
    body = {"message": "Currency can't be blank.", "errors": {"currency": ["can't be blank"]}}
    route = router.post("/async/transactions/payments").respond(422, json=body)
    async with open_gateway() as gw:
        with pytest.raises(bga.RequestRejected) as info:
            await gw.submit(payment())
        assert gw.pending == 0
    assert route.call_count == 1
    assert info.value.errors == {"currency": ["can't be blank"]}
    assert info.value.tracking_id == "order-42"


async def test_same_request_id_answered_twice_is_one_job(open_gateway, router):
    """Re-submitting with a RequestID the gateway already acknowledged returns the same job."""
    accept(router)
    router.get(RESULT).respond(200, json=transaction())
    async with open_gateway() as gw:
        first = await gw.submit(payment(), idempotency_key="k")
        second = await gw.submit(payment(), idempotency_key="k")
        assert first is second
        await first


# --- many jobs ----------------------------------------------------------------------------


async def test_two_thousand_jobs_one_shot_bodies_read_once(clock):
    """2000 jobs, a third failing: every error body read once, the per-host cap kept."""
    created: dict[str, float] = {}
    reads: dict[str, int] = {}
    in_flight = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        if request.method == "POST":
            request_id = f"r{len(created)}"
            created[request_id] = clock.monotonic()
            return httpx.Response(200, json=ack(request_id))
        request_id = request.url.path.rsplit("/", 1)[1]
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await clock.sleep(0.01)  # the answer takes a little virtual time
        finally:
            in_flight -= 1
        number = int(request_id[1:])
        if clock.monotonic() < created[request_id] + 1 + number % 7:
            return httpx.Response(200, json=processing(request_id))
        reads[request_id] = reads.get(request_id, 0) + 1
        if reads[request_id] > 1:
            return unknown(request_id)
        if number % 3 == 0:
            return httpx.Response(422, json={"message": f"failed {request_id}"})
        return httpx.Response(200, json=transaction(f"u{number}"))

    gateway = bga.Gateway(
        BASE,
        361,
        SECRET,
        transport=httpx.MockTransport(handler),
        clock=clock,
        limits=bga.Limits(polls_per_host=16),
    )
    async with clock.autojump(), gateway as gw:
        jobs = [await gw.submit(payment(tracking_id=f"t{i}")) for i in range(2000)]
        outcomes = []
        async for job in gw.as_completed(jobs):
            try:
                outcomes.append((await job).uid)
            except bga.JobFailed as exc:
                outcomes.append(exc.message)
    assert len(outcomes) == 2000
    assert set(reads.values()) == {1}
    assert len(reads) == 2000
    assert sum(1 for o in outcomes if o and o.startswith("failed")) == 667
    assert peak == 16


async def test_the_shortcuts_send_the_idempotency_key_they_are_given(open_gateway, router):
    """``gw.payment(..., idempotency_key=...)`` sends it as the RequestID, like `submit`."""
    route = router.post("/async/transactions/payments").respond(200, json=ack())
    router.get(RESULT).respond(200, json=transaction())
    async with open_gateway() as gw:
        tx = await gw.payment(payment(), idempotency_key="order-42-attempt-1")
    assert tx.status == "successful"
    assert [c.request.headers["requestid"] for c in route.calls] == ["order-42-attempt-1"]


@pytest.mark.parametrize("timeout", ["5", -1, True, float("nan")])
async def test_a_wrong_timeout_is_refused_before_anything_is_sent(open_gateway, router, timeout):
    """``timeout="5"`` names the field; no payment is left under way with nobody waiting."""
    route = router.post("/async/transactions/payments").respond(200, json=ack())
    async with open_gateway() as gw:
        with pytest.raises(bga.InvalidRequest) as refused:
            await gw.payment(payment(), timeout=timeout)
        assert refused.value.field == "timeout"
        assert route.call_count == 0
        job = await gw.submit(payment(tracking_id="t-2"))
        with pytest.raises(bga.InvalidRequest, match="timeout"):
            await job.result(timeout)
        job.abandon()


async def test_a_burst_of_submits_lets_the_loop_turn_between_slots_worth():
    """A transport that never suspends (an app in process): a burst's submits do not run in one go.

    Each submit holds its slot across a turn of the loop, so between two turns
    of another task at most ``concurrent_submits`` submits are acknowledged;
    before, all 64 went in the first turn, and every poll due meanwhile (and
    every caller woken) waited behind them.
    """
    clock = VirtualClock()
    simulator = Simulator(clock=clock)
    acked = 0
    seen: list[int] = []

    async def one(gw: bga.Gateway, n: int) -> None:
        nonlocal acked
        await gw.submit(payment(100 + n, tracking_id=None))
        acked += 1

    async def probe() -> None:
        while acked < 64:
            seen.append(acked)
            await anyio.lowlevel.checkpoint()

    gateway = bga.Gateway(
        "https://gw.test",
        361,
        DEMO_SHOPS["361"],
        transport=SimulatorTransport(simulator),
        clock=clock,
        limits=bga.Limits(concurrent_submits=4),
    )
    with anyio.fail_after(10):
        async with clock.autojump(), gateway as gw, anyio.create_task_group() as tg:
            tg.start_soon(probe)
            for n in range(64):
                tg.start_soon(one, gw, n)
    steps = [b - a for a, b in zip(seen, [*seen[1:], 64], strict=True)]
    assert len(seen) > 64 // 4
    assert max(steps) <= 4
