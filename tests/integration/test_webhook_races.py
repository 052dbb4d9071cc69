"""Notifications racing polls, on the simulator in process and on virtual time.

The simulator sends its signed notifications to a Starlette shop app that
mounts `WebhookEndpoint`; the Gateway polls the same simulator. Loopback
versions of the races are in ``test_webhook_loopback.py``.
"""

from __future__ import annotations

import base64
import functools
import os
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import attrs
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from webhook_helpers import count_ends, polls

import begateway_async as bga
from begateway_async.testing import Fault, Faults, Uniform
from begateway_async.testing._notifier import RETRIES, sign
from fakes import DECLINED, payment

#: Customers come back from 3-D Secure a minute after the bank answered.
pytestmark = [pytest.mark.anyio, pytest.mark.simulator(three_d_secure_delay=60.0)]

NOTIFY = "http://shop.test/notify"
CHALLENGE_OK = "4012000000001097"  # 3-D Secure challenge, then successful
CHALLENGE_FAILS = "4012000000001022"  # 3-D Secure "U", then failed
HOUR = 3600.0
SLOW_POLLS = bga.PollPolicy(first_delay=600.0, max_delay=600.0, adaptive=False)

#: A payment whose request names the shop's notification URL.
order = functools.partial(payment, notification_url=NOTIFY, description="Order")


Handler = Callable[[bga.Notification], Awaitable[object]]


def shop(gateway: bga.Gateway, on_notification: Handler | None = None, **wrap: Any) -> Any:
    """The shop's app: the endpoint mounted in one line, optionally behind a slow network."""
    app: Any = Starlette(
        routes=[
            Route(
                "/notify",
                bga.WebhookEndpoint(gateway, on_notification=on_notification),
                methods=["POST"],
            )
        ]
    )
    latency = wrap.get("latency")
    if latency is not None:
        inner = app

        async def slow(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                await latency()
            await inner(scope, receive, send)

        app = slow
    return httpx.ASGITransport(app=app)


async def test_webhook_first_resolves_each_job_once_and_drops_its_polls(connect, simulator):
    journal = bga.MemoryJournal(keep_finished=True)
    seen: list[bga.Notification] = []

    async def record(notification: bga.Notification) -> None:
        seen.append(notification)

    async with (
        connect(poll=SLOW_POLLS, journal=journal, webhook_key=simulator.public_key) as gw,
        simulator.notifying(shop(gw, record)),
    ):
        jobs = [await gw.submit(order(100 + i, tracking_id=f"order-{i}")) for i in range(40)]
        ends = count_ends(jobs)
        results = [await job for job in jobs]
        entries = await journal.entries(gw.base_url, gw.shop_id)
        kept = await journal.notifications(gw.base_url, gw.shop_id)
    assert all(tx.successful for tx in results)
    assert ends == {job.request_id: 1 for job in jobs}
    assert [polls(simulator, job) for job in jobs] == [0] * 40  # every poll was dropped
    assert all(n.resolved and n.job is not None for n in seen)
    assert {n.job.request_id for n in seen if n.job} == {job.request_id for job in jobs}
    assert [(a.attempt, a.answer) for a in simulator.notifier.attempts] == [(0, 200)] * 40
    # On record before the 200: each notification, and each job's outcome (its body).
    assert len(kept) == 40
    bodies = {n.key: gw.unseal(n).body for n in kept}
    ended = [gw.unseal(e) for e in entries]
    assert {e.key: e.outcome.body for e in ended if e.outcome} == bodies


async def test_poll_first_then_the_late_notification_changes_nothing(connect, simulator, clock):
    """The shop fails every first delivery: polls end the jobs, the retries find them ended."""
    failed_once: set[str] = set()
    calls: Counter[str] = Counter()

    async def flaky(notification: bga.Notification) -> None:
        uid = notification.transaction.uid
        assert uid is not None
        calls[uid] += 1
        if uid not in failed_once:
            failed_once.add(uid)
            raise RuntimeError("the shop's database is down")

    async with (
        connect(webhook_key=simulator.public_key) as gw,
        simulator.notifying(shop(gw, flaky)),
    ):
        jobs = [await gw.submit(order(100 + i, tracking_id=f"order-{i}")) for i in range(30)]
        ends = count_ends(jobs)
        results = [await job for job in jobs]
        await clock.sleep(HOUR)  # the retries come 8 to 66 s later
    assert all(tx.successful for tx in results)
    assert ends == {job.request_id: 1 for job in jobs}
    assert all(polls(simulator, job) >= 1 for job in jobs)
    answers = Counter((a.attempt, a.answer) for a in simulator.notifier.attempts)
    assert answers == {(0, 500): 30, (1, 200): 30}
    assert set(calls.values()) == {2}  # the handler saw each twice: it must be idempotent


async def test_webhooks_and_polls_racing_resolve_every_job_exactly_once(connect, simulator, clock):
    """Random bank times, a slow network to the shop: some jobs end by poll, some by webhook."""
    simulator.processing = {"*": Uniform(0.5, 6.0), "status_query": 0.0}
    rng = random.Random(11)

    async def latency() -> None:
        await clock.sleep(rng.uniform(0.0, 4.0))

    journal = bga.MemoryJournal(keep_finished=True)
    async with (
        connect(journal=journal, webhook_key=simulator.public_key) as gw,
        simulator.notifying(shop(gw, latency=latency)),
    ):
        jobs = [await gw.submit(order(100 + i, tracking_id=f"order-{i}")) for i in range(150)]
        ends = count_ends(jobs)
        results = [await job for job in jobs]
        await clock.sleep(60.0)  # every notification delivered
        kept = await journal.notifications(gw.base_url, gw.shop_id)
        entries = await journal.entries(gw.base_url, gw.shop_id)
    assert all(tx.successful for tx in results)
    assert ends == {job.request_id: 1 for job in jobs}
    assert simulator.stats.transactions == 150
    by_webhook = {n.key for n in kept if n.key is not None}
    assert 0 < len(by_webhook) < 150, "both ways should win some"
    assert len(kept) == 150
    assert all(e.outcome is not None and e.outcome.kind == "result" for e in entries)
    assert all(a.answer == 200 for a in simulator.notifier.attempts)


async def test_forged_tampered_and_malformed_notifications_are_refused(connect, simulator, clock):
    """Nothing resolves the job or reaches the journal until the genuine one arrives."""
    journal = bga.MemoryJournal(keep_finished=True)
    async with connect(poll=SLOW_POLLS, journal=journal, webhook_key=simulator.public_key) as gw:
        job = await gw.submit(order(tracking_id="order-1"))
        await clock.sleep(5.0)  # the transaction is done at the simulator
        uid = next(iter(simulator.ledger.transactions))
        genuine = simulator.notification(uid, gw.base_url)
        assert genuine is not None
        body = genuine[1]
        good_auth = "Basic " + base64.b64encode(f"361:{simulator.shops['361']}".encode()).decode()
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tampered = body.replace(b'"amount":100', b'"amount":1')
        assert tampered != body
        cases = [
            ({"content-signature": sign(body)}, body, 401),  # no credentials
            (
                {"authorization": good_auth[:-4] + "AAA=", "content-signature": sign(body)},
                body,
                401,
            ),
            ({"authorization": good_auth}, body, 403),  # no signature
            ({"authorization": good_auth, "content-signature": sign(body)}, tampered, 403),
            ({"authorization": good_auth, "content-signature": sign(body, stranger)}, body, 403),
            ({"authorization": good_auth, "content-signature": sign(b"{}")}, b"{}", 400),
        ]
        async with httpx.AsyncClient(transport=shop(gw), base_url="http://shop.test") as client:
            for headers, content, expected in cases:
                answer = await client.post("/notify", content=content, headers=headers)
                assert answer.status_code == expected, (headers.keys(), answer.text)
            assert (await client.get("/notify")).status_code == 405
            assert not job.done()
            assert await journal.notifications(gw.base_url, gw.shop_id) == []
            answer = await client.post(
                "/notify",
                content=body,
                headers={"authorization": good_auth, "content-signature": sign(body)},
            )
            assert answer.status_code == 200
        assert job.done()
        assert (await job).uid == uid
        assert polls(simulator, job) == 0


async def test_with_the_wrong_key_every_notification_is_refused_and_polls_decide(
    connect, simulator, clock
):
    wrong = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    journal = bga.MemoryJournal(keep_finished=True)
    async with connect(webhook_key=wrong, journal=journal) as gw, simulator.notifying(shop(gw)):
        jobs = [await gw.submit(order(100 + i, tracking_id=f"order-{i}")) for i in range(10)]
        ends = count_ends(jobs)
        results = [await job for job in jobs]
        await clock.sleep(HOUR)
        kept = await journal.notifications(gw.base_url, gw.shop_id)
    assert all(tx.successful for tx in results)
    assert ends == {job.request_id: 1 for job in jobs}
    assert kept == []
    assert {a.answer for a in simulator.notifier.attempts} == {403}
    assert max(a.attempt for a in simulator.notifier.attempts) >= 3  # retried on schedule


async def test_the_simulator_retries_on_the_documented_schedule(connect, simulator, clock):
    """Fifteen retries after the first send, ``int(2.12 n)^3 + rand(30) (n + 1)`` s apart."""

    async def broken(_: bga.Notification) -> None:
        raise RuntimeError("always down")

    async with (
        connect(webhook_key=simulator.public_key) as gw,
        simulator.notifying(shop(gw, broken)),
    ):
        job = await gw.submit(order(tracking_id="order-1"))
        await job
        await clock.sleep(48 * HOUR)
        assert simulator.notifier.pending == 0  # given up
    attempts = simulator.notifier.attempts
    assert [a.attempt for a in attempts] == list(range(RETRIES + 1))
    assert {a.answer for a in attempts} == {500}
    for n in range(1, RETRIES + 1):
        gap = attempts[n].at - attempts[n - 1].at
        base = int(2.12 * n) ** 3
        assert base <= gap <= base + 29 * (n + 1), (n, gap)
    total = attempts[-1].at - attempts[0].at
    assert 35 * HOUR < total < 38 * HOUR


@pytest.mark.parametrize(
    ("number", "final"), [(CHALLENGE_OK, "successful"), (CHALLENGE_FAILS, "failed")]
)
async def test_an_incomplete_payment_is_followed_to_its_final_status_by_webhook(
    connect, simulator, clock, number, final
):
    async with (
        connect(webhook_key=simulator.public_key) as gw,
        simulator.notifying(shop(gw)),
    ):
        tx = await gw.payment(
            order(100, number, tracking_id="order-3ds", return_url="https://shop.test/back")
        )
        assert tx.incomplete
        assert tx.redirect_url is not None
        assert tx.redirect_url.endswith(f"/process/{tx.uid}")
        started = clock.monotonic()
        # Queries at 25 s and 75 s (and jitter): the notification comes in between.
        done = await gw.follow(
            tx, poll=bga.PollPolicy(first_delay=25.0, factor=2.0, adaptive=False)
        )
        waited = clock.monotonic() - started
    assert (done.uid, done.status) == (tx.uid, final)
    assert 55.0 < waited < 62.0  # the customer came back a minute after the bank answered
    queries = [j for j in simulator.stats.jobs.values() if j.operation == "status_query"]
    assert len(queries) == 1


@pytest.mark.parametrize(
    ("number", "final"), [(CHALLENGE_OK, "successful"), (CHALLENGE_FAILS, "failed")]
)
async def test_without_a_notification_the_follow_up_queries_by_uid(
    connect, simulator, number, final
):
    async with connect() as gw:
        tx = await gw.payment(order(100, number, tracking_id="order-3ds", notification_url=None))
        assert tx.incomplete
        done = await gw.follow(tx, poll=bga.PollPolicy(first_delay=5.0, factor=2.0, adaptive=False))
    assert (done.uid, done.status) == (tx.uid, final)
    queries = [j for j in simulator.stats.jobs.values() if j.operation == "status_query"]
    # 5, 15, 35, 75 s (plus jitter) after the answer: the fourth sees the customer back at 60 s.
    assert len(queries) == 4


async def test_a_follow_up_past_its_deadline_raises_with_the_last_state(connect, simulator, clock):
    simulator.three_d_secure_delay = None  # the customer never comes back
    async with connect() as gw:
        tx = await gw.payment(order(100, CHALLENGE_OK, tracking_id="order-3ds"))
        started = clock.monotonic()
        with pytest.raises(bga.FollowUpTimeout, match="still incomplete") as caught:
            await gw.follow(tx, within=600.0)
        assert clock.monotonic() - started == pytest.approx(600.0)
    assert caught.value.transaction.incomplete
    assert caught.value.uid == tx.uid


async def test_a_final_notification_before_follow_is_not_missed(connect, simulator, clock):
    async with (
        connect(webhook_key=simulator.public_key) as gw,
        simulator.notifying(shop(gw)),
    ):
        tx = await gw.payment(order(100, CHALLENGE_OK, tracking_id="order-3ds"))
        await clock.sleep(300.0)  # the notification came meanwhile
        done = await gw.follow(tx)
    assert done.successful
    assert not any(j.operation == "status_query" for j in simulator.stats.jobs.values())


async def test_a_notification_shared_by_two_pending_jobs_resolves_neither(connect, simulator):
    journal = bga.MemoryJournal(keep_finished=True)
    seen: list[bga.Notification] = []

    async def record(notification: bga.Notification) -> None:
        seen.append(notification)

    policy = bga.PollPolicy(first_delay=30.0, adaptive=False)
    async with (
        connect(poll=policy, journal=journal, webhook_key=simulator.public_key) as gw,
        simulator.notifying(shop(gw, record)),
    ):
        first = await gw.submit(order(tracking_id="order-same"))
        second = await gw.submit(order(200, tracking_id="order-same", description="Second"))
        results = [await first, await second]
    assert [n.resolved for n in seen] == [False, False]
    assert all(n.job is None for n in seen)
    assert polls(simulator, first) >= 1
    assert polls(simulator, second) >= 1
    assert {tx.description for tx in results} == {"Order", "Second"}


async def test_an_earlier_attempts_notification_never_ends_a_retry(connect, simulator, clock):
    """A declined payment is retried with the same tracking id; the old notification is late."""
    async with connect(poll=SLOW_POLLS, webhook_key=simulator.public_key) as gw:
        declined = await gw.payment(order(100, DECLINED, tracking_id="order-9"))
        assert declined.failed
        retry = await gw.submit(order(tracking_id="order-9"))
        # Only now can the shop take notifications: the old one is first in the outbox.
        async with simulator.notifying(shop(gw)):
            result = await retry
    assert result.successful
    assert result.uid != declined.uid
    statuses = [a.status for a in simulator.notifier.attempts]
    assert statuses == ["failed", "successful"]


async def test_a_notification_is_answered_503_until_the_journal_takes_it(connect, simulator, clock):
    @attrs.define
    class FailingOnce(bga.MemoryJournal):
        failures: int = 1

        def __attrs_post_init__(self) -> None:
            bga.MemoryJournal.__init__(self, keep_finished=True)

        async def notified(self, notification: bga.JournalNotification) -> None:
            if self.failures:
                self.failures -= 1
                raise bga.JournalError("disk full")
            await super().notified(notification)

    journal = FailingOnce()
    async with (
        connect(poll=SLOW_POLLS, journal=journal, webhook_key=simulator.public_key) as gw,
        simulator.notifying(shop(gw)),
    ):
        job = await gw.submit(order(tracking_id="order-1"))
        await job
        kept = await journal.notifications(gw.base_url, gw.shop_id)
    assert [(a.attempt, a.answer) for a in simulator.notifier.attempts] == [(0, 503), (1, 200)]
    assert [n.key for n in kept] == [job.idempotency_key]
    assert polls(simulator, job) == 0  # the retry, 8 to 66 s later, still came before a poll


async def test_sqlite_keeps_notifications_across_processes(connect, simulator, clock, tmp_path):
    path = tmp_path / "payments.db"
    async with (
        connect(
            poll=SLOW_POLLS, journal=path, webhook_key=simulator.public_key, autojump=False
        ) as gw,
        simulator.notifying(shop(gw)),
    ):
        job = await gw.submit(order(tracking_id="order-1"))
        await clock.advance(5.0)  # the bank is done at 2 s: the notification comes
        tx = await job
    journal = bga.SQLiteJournal(path)
    try:
        kept = await journal.notifications("https://gateway.simulator.test", "361")
    finally:
        await journal.aclose()
    assert [(n.uid, n.status, n.tracking_id, n.key) for n in kept] == [
        (tx.uid, "successful", "order-1", job.idempotency_key)
    ]


class GatedJournal(bga.MemoryJournal):
    """Holds the first result write until `gate` opens, then writes it (or fails it)."""

    def __init__(self, *, fail: bool) -> None:
        super().__init__(keep_finished=True)
        self.fail = fail
        self.holding = anyio.Event()
        self.gate = anyio.Event()
        self.held = False

    async def finished(self, key: str, outcome: bga.JournalOutcome) -> None:  # noqa: D102
        if outcome.kind == "result" and not self.held:
            self.held = True
            self.holding.set()
            await self.gate.wait()
            if self.fail:
                raise bga.JournalError("disk full")
        await super().finished(key, outcome)


@pytest.mark.parametrize("fail", [False, True], ids=["poll-records", "poll-journal-fails"])
async def test_a_notification_during_a_polls_journal_write_waits_for_it(connect, simulator, fail):
    """The poll recording its answer ends the job; if its write fails, the notification does."""
    journal = GatedJournal(fail=fail)
    async with connect(journal=journal, webhook_key=simulator.public_key) as gw:
        job = await gw.submit(order(tracking_id="order-1"))
        ends = count_ends([job])
        await journal.holding.wait()  # a poll has the result and is writing it
        uid = next(iter(simulator.ledger.transactions))
        rendered = simulator.notification(uid, gw.base_url)
        assert rendered is not None
        body = rendered[1]
        headers = {
            "authorization": "Basic "
            + base64.b64encode(f"361:{simulator.shops['361']}".encode()).decode(),
            "content-signature": sign(body),
        }
        delivered: list[bga.Notification] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: _deliver(gw, body, headers, delivered))
            await anyio.wait_all_tasks_blocked()
            assert not delivered  # waiting for the poll's write
            journal.gate.set()
        tx = await job
        kept = await journal.notifications(gw.base_url, gw.shop_id)
    assert tx.uid == uid
    assert ends == {job.request_id: 1}
    assert delivered[0].resolved is fail
    assert [n.key for n in kept] == [job.idempotency_key if fail else None]


async def _deliver(gw: bga.Gateway, body: bytes, headers: dict[str, str], out: list[Any]) -> None:
    out.append(await gw.deliver(body, headers))


async def test_webhook_poll_makes_polls_the_fallback_for_notified_jobs(connect, simulator, clock):
    """No notification comes (the shop is down): the notified job is polled from 30 s on."""
    fallback = bga.PollPolicy(first_delay=30.0, adaptive=False, jitter=0.0)
    async with connect(webhook_poll=fallback) as gw:
        notified = await gw.submit(order(tracking_id="order-1"))
        plain = await gw.submit(order(200, tracking_id="order-2", notification_url=None))
        ended: dict[str, float] = {}
        for job in (notified, plain):
            job.add_done_callback(
                lambda j: ended.setdefault(j.tracking_id or "", clock.monotonic())
            )
        await notified
        await plain
    assert ended["order-2"] < 5.0  # the usual cadence: the bank takes 2 s
    assert ended["order-1"] == pytest.approx(30.0)
    assert polls(simulator, notified) == 1


async def test_every_fault_at_once_with_notifications_still_ends_each_job_once(
    connect, simulator, clock
):
    """Dropped, truncated, throttled and failing answers, notifications racing: once each."""
    simulator.faults = Faults(
        too_early=Fault(rate=0.2),
        drop=Fault(rate=0.05),
        html_error=Fault(rate=0.05),
        truncate=Fault(rate=0.05),
        throttle=Fault(rate=0.03, retry_after=0.2),
        unavailable=Fault(rate=0.03, retry_after=0.2),
        internal_error=Fault(rate=0.03),
    )
    simulator.processing = {"*": Uniform(0.5, 6.0), "status_query": 0.0, "tracking_id_query": 0.0}
    rng = random.Random(2)

    async def latency() -> None:
        await clock.sleep(rng.uniform(0.0, 3.0))

    journal = bga.MemoryJournal(keep_finished=True)
    outcomes: dict[str, object] = {}
    async with (
        connect(journal=journal, webhook_key=simulator.public_key) as gw,
        simulator.notifying(shop(gw, latency=latency)),
    ):
        jobs = []
        count = 2000 if os.environ.get("BEGATEWAY_SOAK") == "1" else 150  # nox -s soak: long
        for i in range(count):
            try:
                jobs.append(await gw.submit(order(100 + i, tracking_id=f"order-{i}")))
            except bga.GatewayError as exc:  # refused, or no answer after every re-send
                outcomes[f"order-{i}"] = exc
        ends = count_ends(jobs)
        for job in jobs:
            try:
                outcomes[job.tracking_id or ""] = await job
            except bga.JobError as exc:
                outcomes[job.tracking_id or ""] = exc
        await clock.sleep(HOUR)  # every notification and its retries delivered
        kept = await journal.notifications(gw.base_url, gw.shop_id)
    assert ends == {job.request_id: 1 for job in jobs}
    paid = {k for k, v in outcomes.items() if isinstance(v, bga.Transaction) and v.successful}
    # No payment is made twice, and each made one is known to its caller or notified.
    made = {tx.tracking_id for tx in simulator.ledger.transactions.values()}
    assert len(made) == simulator.stats.transactions
    assert paid <= made
    assert made <= paid | {n.tracking_id for n in kept}
    assert {n.tracking_id for n in kept} == made
    assert len(paid) > 0.8 * count


async def test_follow_checks_its_arguments(connect):
    async with connect() as gw:
        with pytest.raises(bga.InvalidRequest, match="must be a Transaction"):
            await gw.follow({"uid": "u1"})  # type: ignore[arg-type]
        nameless = bga.Transaction(status=bga.TransactionStatus("incomplete"))
        with pytest.raises(bga.InvalidRequest, match="neither a uid nor a tracking_id"):
            await gw.follow(nameless)
        tx = bga.Transaction(status=bga.TransactionStatus("incomplete"), uid="u1")
        for within in (0, -1, float("inf"), "60"):
            with pytest.raises(bga.InvalidRequest, match="within"):
                await gw.follow(tx, within=within)  # type: ignore[arg-type]
        with pytest.raises(bga.InvalidRequest, match="poll"):
            await gw.follow(tx, poll={"first_delay": 1})  # type: ignore[arg-type]
        done = bga.Transaction(status=bga.TransactionStatus("successful"), uid="u1")
        assert await gw.follow(done) is done  # already final: nothing to wait for


async def test_follow_without_a_uid_goes_by_tracking_id(connect, simulator):
    async with connect() as gw:
        tx = await gw.payment(
            order(100, CHALLENGE_FAILS, tracking_id="order-3ds", notification_url=None)
        )
        assert tx.incomplete
        known_only_by_order = bga.Transaction(
            status=tx.status, type=tx.type, tracking_id=tx.tracking_id
        )
        done = await gw.follow(known_only_by_order)
    assert (done.uid, done.status) == (tx.uid, "failed")
    operations = Counter(j.operation for j in simulator.stats.jobs.values())
    assert operations["tracking_id_query"] == 1  # then by the uid it learnt


async def test_the_endpoint_mounts_under_a_prefix(connect, simulator):
    """``Mount`` (FastAPI's ``app.mount``) works too, at the mount path with a slash."""
    async with connect(poll=SLOW_POLLS, webhook_key=simulator.public_key) as gw:
        app = Starlette(routes=[Mount("/hooks/begateway", app=bga.WebhookEndpoint(gw))])
        async with simulator.notifying(httpx.ASGITransport(app=app)):
            # Without the slash Starlette answers 307, which the gateway does not follow.
            notify = "http://shop.test/hooks/begateway/"
            job = await gw.submit(order(tracking_id="order-1", notification_url=notify))
            tx = await job
    assert tx.successful
    assert polls(simulator, job) == 0
    assert [a.answer for a in simulator.notifier.attempts] == [200]
