"""Webhooks end to end over loopback: the simulator, the shop's Starlette app, the Gateway.

Both servers run under hypercorn in the test's own event loop (asyncio or
trio), on 127.0.0.1 sockets, on real time: the bank takes a fraction of a
second and every test is bounded by `anyio.fail_after`.
"""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.routing import Route
from webhook_helpers import count_ends, polls, serving

import begateway_async as bga
from begateway_async.testing import DEMO_SHOPS, Simulator, Uniform, spawn
from begateway_async.testing._notifier import sign
from fakes import payment

pytestmark = pytest.mark.anyio

CHALLENGE_OK = "4012000000001097"
CHALLENGE_FAILS = "4012000000001022"
BOUND = 60.0  # seconds any one test may take
STRANGER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


Handler = Callable[[bga.Notification], Awaitable[object]]


def shop_app(
    gateway: bga.Gateway, on_notification: Handler | None = None, delay: float = 0.0
) -> Any:
    """The shop: the webhook endpoint in one line, optionally behind a slow proxy."""
    app = Starlette(
        routes=[
            Route(
                "/notify",
                bga.WebhookEndpoint(gateway, on_notification=on_notification),
                methods=["POST"],
            )
        ]
    )
    if not delay:
        return app

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await anyio.sleep(delay)
        await app(scope, receive, send)

    return slow


@asynccontextmanager
async def world(
    *,
    poll: bga.PollPolicy | None = None,
    on_notification: Handler | None = None,
    shop_delay: float = 0.0,
    webhook_key: str | None = None,
    journal: bga.Journal | None = None,
    notify_through: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[tuple[bga.Gateway, Simulator, str]]:
    """The simulator and the shop on loopback and an open Gateway; yields them, the notify URL."""
    simulator = Simulator(
        processing={"*": Uniform(0.05, 0.4), "status_query": 0.0, "tracking_id_query": 0.0},
        three_d_secure_delay=0.5,
        seed=7,
    )
    with anyio.fail_after(BOUND):
        async with serving(simulator) as gateway_url:
            gateway = bga.Gateway(
                gateway_url,
                361,
                DEMO_SHOPS["361"],
                poll=poll,
                journal=journal,
                webhook_key=webhook_key if webhook_key is not None else simulator.public_key,
                rng=random.Random(3),
            )
            async with (
                serving(shop_app(gateway, on_notification, shop_delay)) as shop_url,
                gateway,
                simulator.notifying(notify_through),
            ):
                yield gateway, simulator, shop_url + "/notify"


async def test_webhook_first_over_loopback():
    """Polls are 5 s away; the bank takes < 0.4 s: every job ends by webhook, no poll is made."""
    late = bga.PollPolicy(first_delay=5.0, adaptive=False)
    notes: list[bga.Notification] = []

    async def keep(note: bga.Notification) -> None:
        notes.append(note)

    async with world(poll=late, on_notification=keep) as (gw, simulator, notify):
        jobs = [
            await gw.submit(payment(100 + i, tracking_id=f"order-{i}", notification_url=notify))
            for i in range(30)
        ]
        ends = count_ends(jobs)
        results = [await job for job in jobs]
    assert all(tx.successful for tx in results)
    assert ends == {job.request_id: 1 for job in jobs}
    assert sum(polls(simulator, job) for job in jobs) == 0
    assert sorted(n.job.request_id for n in notes if n.resolved and n.job) == sorted(
        job.request_id for job in jobs
    )
    assert {(a.attempt, a.answer) for a in simulator.notifier.attempts} == {(0, 200)}


async def test_poll_first_over_loopback():
    """The shop sits behind a 1.5 s proxy: polls end every job, the notifications change nothing."""
    notes: list[bga.Notification] = []
    all_in = anyio.Event()

    async def keep(note: bga.Notification) -> None:
        notes.append(note)
        if len(notes) == 30:
            all_in.set()

    async with world(on_notification=keep, shop_delay=1.5) as (gw, simulator, notify):
        jobs = [
            await gw.submit(payment(100 + i, tracking_id=f"order-{i}", notification_url=notify))
            for i in range(30)
        ]
        ends = count_ends(jobs)
        results = [await job for job in jobs]
        await all_in.wait()
    assert all(tx.successful for tx in results)
    assert ends == {job.request_id: 1 for job in jobs}
    assert all(polls(simulator, job) >= 1 for job in jobs)
    assert not any(n.resolved for n in notes)
    assert {n.transaction.uid for n in notes} == {tx.uid for tx in results}


async def test_both_ways_at_once_over_loopback():
    """Polls at the default cadence, the shop 0-0.6 s away: each job ends exactly once."""
    rng = random.Random(5)
    journal = bga.MemoryJournal(keep_finished=True)
    taken: list[bga.Notification] = []
    all_in = anyio.Event()

    async def jitter(note: bga.Notification) -> None:
        await anyio.sleep(rng.uniform(0.0, 0.2))
        taken.append(note)
        if len(taken) == 60:
            all_in.set()

    async with world(on_notification=jitter, shop_delay=0.3, journal=journal) as (
        gw,
        simulator,
        notify,
    ):
        jobs = [
            await gw.submit(payment(100 + i, tracking_id=f"order-{i}", notification_url=notify))
            for i in range(60)
        ]
        ends = count_ends(jobs)
        results = [await job for job in jobs]
        await all_in.wait()  # every notification on record and handled
        assert len(await journal.notifications(gw.base_url, gw.shop_id)) == 60
        entries = await journal.entries(gw.base_url, gw.shop_id)
    assert all(tx.successful for tx in results)
    assert ends == {job.request_id: 1 for job in jobs}
    assert simulator.stats.transactions == 60
    assert all(e.outcome is not None and e.outcome.kind == "result" for e in entries)


async def test_forged_and_tampered_notifications_over_loopback():
    late = bga.PollPolicy(first_delay=30.0, adaptive=False)
    held = anyio.Event()

    def hold(_: httpx.Request) -> httpx.Response:
        held.set()
        return httpx.Response(503)

    # The simulator's own notification is held back; forgeries of it go to the shop first.
    async with world(poll=late, notify_through=httpx.MockTransport(hold)) as (
        gw,
        simulator,
        notify,
    ):
        job = await gw.submit(payment(101, tracking_id="order-1", notification_url=notify))
        await held.wait()
        uid = simulator.notifier.attempts[0].uid
        rendered = simulator.notification(uid, gw.base_url)
        assert rendered is not None
        body = rendered[1]
        auth = "Basic " + base64.b64encode(f"361:{DEMO_SHOPS['361']}".encode()).decode()
        async with httpx.AsyncClient() as client:
            forged = [
                (
                    {
                        "authorization": "Basic " + base64.b64encode(b"361:guess").decode(),
                        "content-signature": sign(body),
                    },
                    body,
                    401,
                ),
                (
                    {"authorization": auth, "content-signature": sign(body)},
                    body.replace(b'"successful"', b'"failed"'),
                    403,
                ),
                ({"authorization": auth}, body, 403),
                # Signed, but with a key that is not the gateway's.
                ({"authorization": auth, "content-signature": sign(body, STRANGER)}, body, 403),
            ]
            for headers, content, expected in forged:
                answer = await client.post(notify, content=content, headers=headers)
                assert answer.status_code == expected
            assert not job.done()
            answer = await client.post(
                notify,
                content=body,
                headers={"authorization": auth, "content-signature": sign(body)},
            )
            assert answer.status_code == 200
        assert (await job).uid == uid
        assert polls(simulator, job) == 0


@pytest.mark.parametrize(
    ("number", "final"), [(CHALLENGE_OK, "successful"), (CHALLENGE_FAILS, "failed")]
)
async def test_incomplete_followed_by_webhook_over_loopback(number: str, final: str):
    async with world() as (gw, simulator, notify):
        tx = await gw.payment(
            payment(
                101,
                number,
                tracking_id="order-1",
                notification_url=notify,
                return_url="https://shop.test/back",
            )
        )
        assert tx.incomplete
        done = await gw.follow(tx, within=10.0)
    assert (done.uid, done.status) == (tx.uid, final)
    assert not any(j.operation == "status_query" for j in simulator.stats.jobs.values())


@pytest.mark.parametrize(
    ("number", "final"), [(CHALLENGE_OK, "successful"), (CHALLENGE_FAILS, "failed")]
)
async def test_incomplete_followed_by_status_query_over_loopback(number: str, final: str):
    # Polls at 0.2 s and 0.5 s both fall in the 0.5 s a task ready by 0.4 s stays incomplete.
    quick = bga.PollPolicy(first_delay=0.2, factor=1.5, adaptive=False)
    async with world(poll=quick) as (gw, simulator, _):
        tx = await gw.payment(payment(101, number, tracking_id="order-1"))
        assert tx.incomplete
        done = await gw.follow(tx, within=10.0, poll=quick)
    assert (done.uid, done.status) == (tx.uid, final)
    assert any(j.operation == "status_query" for j in simulator.stats.jobs.values())


async def test_the_simulate_command_sends_signed_notifications():
    """``begateway-async simulate`` in its own process notifies a shop on loopback."""
    with spawn(["--median", "0.1", "--p99", "0.3", "--3ds-delay", "0.3"]) as gateway_url:
        async with httpx.AsyncClient() as client:
            key = (await client.get(f"{gateway_url}/_simulator/public_key")).json()["public_key"]
        late = bga.PollPolicy(first_delay=20.0, adaptive=False)
        gateway = bga.Gateway(
            gateway_url, 361, DEMO_SHOPS["361"], webhook_key=key, poll=late, drain=False
        )
        with anyio.fail_after(BOUND):
            async with serving(shop_app(gateway)) as shop_url, gateway:
                notify = shop_url + "/notify"
                job = await gateway.submit(
                    payment(101, tracking_id="order-1", notification_url=notify)
                )
                tx = await job  # by notification: the first poll is 20 s away
                assert tx.successful
                assert job.polls == 0
                # 3-D Secure: the customer is back 0.3 s after the bank answered, long
                # before the first poll; the final notification ends the job itself.
                threeds = await gateway.submit(
                    payment(102, CHALLENGE_OK, tracking_id="order-2", notification_url=notify)
                )
                final = await threeds
                assert final.successful
                assert final.three_d_secure is not None
                assert threeds.polls == 0


async def test_a_gateway_with_the_wrong_key_refuses_every_notification_over_loopback():
    """The shop configured another key: each notification is refused (403); polls end the jobs."""
    wrong = (
        STRANGER.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    journal = bga.MemoryJournal(keep_finished=True)
    async with world(webhook_key=wrong, journal=journal) as (gw, simulator, notify):
        jobs = [
            await gw.submit(payment(100 + i, tracking_id=f"order-{i}", notification_url=notify))
            for i in range(10)
        ]
        ends = count_ends(jobs)
        results = [await job for job in jobs]
        await simulator.notifier.wait_for(lambda sent: len(sent) >= 10)
        kept = await journal.notifications(gw.base_url, gw.shop_id)
    assert all(tx.successful for tx in results)
    assert ends == {job.request_id: 1 for job in jobs}
    assert {a.answer for a in simulator.notifier.attempts} == {403}
    assert kept == []
