"""Hostile answers end one job, never hang it: each beside hundreds of normal jobs that finish."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

import begateway_async as bga
from fakes import BASE, ack, payment, transaction

pytestmark = pytest.mark.anyio

NORMAL = 300
#: The normal jobs' bank takes this long.
READY = 2.0
DEEP = b"[" * 100_000 + b"]" * 100_000

Answer = Callable[[httpx.Request], httpx.Response]


class World:
    """A fake gateway: ``NORMAL`` ordinary jobs, and one job ``bad`` answered by ``hostile``."""

    def __init__(self, router: Any, clock: Any, hostile: Answer) -> None:
        self.clock = clock
        self.created: dict[str, float] = {}
        self.polls: dict[str, list[float]] = {}
        self.hostile = hostile
        self.submits = 0
        router.post("/async/transactions/payments").mock(side_effect=self.submit)
        router.get(url__regex=rf"{re.escape(BASE)}/async/result/(?P<rid>[\w-]+)").mock(
            side_effect=self.poll
        )

    def submit(self, _: httpx.Request) -> httpx.Response:
        """Acknowledge: the first submit is the hostile job's."""
        request_id = "bad" if self.submits == 0 else f"r{self.submits}"
        self.submits += 1
        self.created[request_id] = self.clock.monotonic()
        return httpx.Response(200, json=ack(request_id))

    def poll(self, request: httpx.Request, rid: str) -> httpx.Response:
        """Answer a poll: the hostile job's way, or processing until the bank is done."""
        self.polls.setdefault(rid, []).append(self.clock.monotonic())
        if rid == "bad":
            return self.hostile(request)
        if self.clock.monotonic() < self.created[rid] + READY:
            return httpx.Response(200, json={"status": "processing", "request_id": rid})
        return httpx.Response(200, json=transaction(f"u-{rid}"))


async def run(world: World, gw: bga.Gateway) -> tuple[bga.Job[Any], list[bga.Transaction]]:
    """Submit the hostile job first, then the normal ones; return it and their results."""
    bad = await gw.submit(payment(tracking_id="bad"))
    normal = [await gw.submit(payment(100 + i, tracking_id=f"n-{i}")) for i in range(NORMAL)]
    results = [await job for job in normal]
    assert len(world.created) == NORMAL + 1
    return bad, results


def finished(results: list[bga.Transaction]) -> None:
    assert len(results) == NORMAL
    assert all(tx.successful for tx in results)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (lambda _: httpx.Response(200, content=DEEP), "nested too deeply"),
        (lambda _: httpx.Response(422, content=b'{"errors":' + DEEP), "nested too deeply"),
        (lambda _: httpx.Response(302, headers={"location": "/elsewhere"}), "redirect"),
        (lambda _: httpx.Response(301, headers={"location": "https://evil.test/"}), "redirect"),
    ],
    ids=["deep-200", "deep-422", "redirect-same-origin", "redirect-elsewhere"],
)
async def test_an_unreadable_answer_ends_that_job_malformed(
    open_gateway, router, clock, answer, reason
):
    """JSON nested 100 000 deep, or a 3xx, ends that one job with MalformedResponse."""
    world = World(router, clock, answer)
    async with open_gateway() as gw:
        bad, results = await run(world, gw)
        with pytest.raises(bga.MalformedResponse, match=reason):
            await bad
    finished(results)
    assert len(world.polls["bad"]) == 1  # read once, never retried


async def test_a_deep_answer_to_a_submit_is_typed(open_gateway, router):
    """A submit answered with JSON too deep is re-sent with its RequestID, then indeterminate."""
    posts = router.post("/async/transactions/payments").respond(200, content=DEEP)
    async with open_gateway() as gw:
        with pytest.raises(bga.SubmitIndeterminate) as info:
            await gw.submit(payment())
    keys = {call.request.headers["RequestID"] for call in posts.calls}
    assert keys == {info.value.idempotency_key}
    assert posts.call_count == 3


class Exploding(httpx.AsyncBaseTransport):
    """Answers through ``inner``, but raises an error of no known kind for the job ``bad``."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Raise for ``bad``'s polls, pass everything else on."""
        if request.url.path.endswith("/bad"):
            raise ZeroDivisionError("a transport of one's own, surprised")
        return await self.inner.handle_async_request(request)


async def test_an_unexpected_error_ends_that_job_only(open_gateway, router, clock, caplog):
    """An error nobody expected stops that job's polls (typed, resumable); the others finish."""
    world = World(router, clock, lambda _: httpx.Response(500))
    transport = Exploding(httpx.MockTransport(router.async_handler))
    async with open_gateway(transport=transport) as gw:
        bad, results = await run(world, gw)
        with pytest.raises(bga.JobAbandoned, match="ZeroDivisionError") as info:
            await bad
        assert isinstance(info.value.__cause__, ZeroDivisionError)
        assert bad.token()  # it can be resumed
        assert gw.pending == 0
    finished(results)
    assert "an unexpected error stops its polls" in caplog.text


async def test_an_unexpected_error_in_a_submit_is_indeterminate(open_gateway, router):
    """A transport surprise on a submit may have sent it: re-sent with its RequestID, typed."""
    calls: list[str] = []

    class Surprised(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            calls.append(request.headers["RequestID"])
            raise KeyError("surprise")

    async with open_gateway(transport=Surprised()) as gw:
        with pytest.raises(bga.SubmitIndeterminate, match="KeyError") as info:
            await gw.submit(payment())
    assert calls == [info.value.idempotency_key] * 3


@pytest.mark.parametrize("value", ["-5", "0"])
async def test_a_tiny_retry_after_is_floored(open_gateway, router, clock, value):
    """Retry-After of -5, 0 or almost 0 waits `min_retry_after` (1 s), not nothing."""
    world = World(
        router,
        clock,
        lambda _: httpx.Response(
            200, headers={"retry-after": value}, json={"status": "processing"}
        ),
    )
    async with open_gateway(drain=False) as gw:
        bad, results = await run(world, gw)
        await clock.sleep(60.0)
        assert not bad.done()
    finished(results)
    polls = world.polls["bad"]
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert min(gaps) >= 0.99  # (the scheduler treats what is due within 1 ms as due)
    assert len(polls) <= 70  # about one a second over the minute, not thousands


@pytest.mark.parametrize(
    "answer",
    [
        lambda _: httpx.Response(502, text="<html>Bad Gateway</html>"),
        lambda _: httpx.Response(200, content=b'{"transaction": {"uid": "u1", "sta'),
        lambda request: (_ for _ in ()).throw(httpx.RemoteProtocolError("reset", request=request)),
    ],
    ids=["html-502", "truncated", "reset"],
)
async def test_persistent_transient_answers_back_off(open_gateway, router, clock, answer):
    """Failures in a row back off to max_delay, also once the adaptive plan applies."""
    world = World(router, clock, answer)
    async with open_gateway(drain=False) as gw:
        bad, results = await run(world, gw)  # 300 completions: the learnt plan applies
        started = clock.monotonic()
        await clock.sleep(3600.0)
        assert not bad.done()
    finished(results)
    late = [t for t in world.polls["bad"] if t > started + 600]
    assert len(late) <= 3000 / 30 * 1.2  # every 30 s (max_delay) with jitter, for 50 min
    gaps = [b - a for a, b in itertools.pairwise(late)]
    assert min(gaps) >= 30.0 * 0.85


def test_min_retry_after_is_validated():
    """min_retry_after must be zero or more and not above max_retry_after."""
    with pytest.raises(bga.InvalidRequest) as info:
        bga.PollPolicy(min_retry_after=-1)
    assert info.value.field == "PollPolicy.min_retry_after"
    with pytest.raises(bga.InvalidRequest) as info:
        bga.PollPolicy(min_retry_after=10, max_retry_after=5)
    assert info.value.field == "PollPolicy.min_retry_after"


async def test_many_hostile_jobs_at_once_leave_the_others_alone(open_gateway, router, clock):
    """Ten deep answers in flight together: each ends malformed; the scheduler goes on."""
    deep = {f"d{i}" for i in range(10)}
    count = 0

    def submit(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        return httpx.Response(200, json=ack(f"d{count - 1}" if count <= 10 else f"ok{count}"))

    def poll(request: httpx.Request, rid: str) -> httpx.Response:
        if rid in deep:
            return httpx.Response(200, content=DEEP)
        return httpx.Response(200, json=transaction(f"u-{rid}"))

    router.post("/async/transactions/payments").mock(side_effect=submit)
    router.get(url__regex=rf"{re.escape(BASE)}/async/result/(?P<rid>\w+)").mock(side_effect=poll)
    async with open_gateway() as gw:
        jobs = [await gw.submit(payment(100 + i)) for i in range(60)]
        outcomes: list[str] = []
        with anyio.fail_after(30):  # a bound in real time, not a measure
            for job in jobs:
                try:
                    outcomes.append(str((await job).status))
                except bga.MalformedResponse:
                    outcomes.append("malformed")
    assert outcomes.count("malformed") == 10
    assert outcomes.count("successful") == 50
