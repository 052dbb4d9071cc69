"""The shared journal on a real PostgreSQL server: leases, claims, first writer wins, wake-ups.

A worker's death is its lease running out: the tests make it run out by
setting it in the past (the database's clock decides), never by sleeping.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import psycopg
import pytest
import respx

import begateway_async as bga
from fakes import BASE, SECRET, SHOP_ID, ack, notification, payment, sent_json, transaction

pytestmark = pytest.mark.anyio

GATEWAY, SHOP = BASE, str(SHOP_ID)
RESULT = f"{BASE}/async/result/r1"
PAYMENTS = "/async/transactions/payments"


def entry(key: str, tracking_id: str | None = "order-42", **fields: Any) -> bga.JournalEntry:
    values: dict[str, Any] = {
        "key": key,
        "gateway": GATEWAY,
        "shop_id": SHOP,
        "operation": "payment",
        "method": "POST",
        "path": "/async/transactions/payments",
        "body": b"sealed",
        "headers": (("X-API-Version", "2"),),
        "tracking_id": tracking_id,
        "tag": None,
        "created_at": 1_000.0,
        **fields,
    }
    return bga.JournalEntry(**values)


def result(body: bytes = b"poll") -> bga.JournalOutcome:
    return bga.JournalOutcome("result", 200, body)


def lost() -> bga.JournalOutcome:
    """A worker's own conclusion about an entry (not the gateway's answer)."""
    return bga.JournalOutcome("error", error="JobLost", message="unknown")


def expire(dsn: str, journal: bga.PostgresJournal) -> None:
    """The worker's lease runs out (by the database's clock): it counts as dead."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            f"UPDATE {journal.schema}.workers SET lease_until = now() - interval '1 second' "  # noqa: S608
            "WHERE id = %s",
            (journal.worker,),
        )


def row(dsn: str, journal: bga.PostgresJournal, key: str) -> tuple[Any, ...]:
    with psycopg.connect(dsn, autocommit=True) as c:
        found = c.execute(
            f"SELECT owner::text, epoch, outcome FROM {journal.schema}.entries WHERE key = %s",  # noqa: S608
            (key,),
        ).fetchone()
    assert found is not None
    return tuple(found)


async def joined(journal: bga.PostgresJournal) -> bga.PostgresJournal:
    await journal.join(GATEWAY, SHOP)
    return journal


# --- the journal itself --------------------------------------------------------------------


async def test_a_dead_workers_entries_are_taken_over_by_the_claim(pg_dsn, pg_journal):
    """Entries of a worker whose lease ran out are claimable; a live worker's are not."""
    a, b = await joined(pg_journal()), await joined(pg_journal())
    await a.intent(entry("k1"))
    await a.acknowledged("k1", "r1", f"{BASE}/async/status/r1", RESULT)
    assert await b.claim(10) == []  # a is alive
    expire(pg_dsn, a)
    (taken,) = await b.claim(10)
    assert taken.key == "k1"
    assert taken.request_id == "r1"
    assert taken.body is None  # erased at the acknowledgement
    assert row(pg_dsn, b, "k1")[:2] == (b.worker, 2)  # b's now, a new epoch
    assert await b.claim(10) == []  # claimed once


async def test_a_stale_owner_concludes_nothing_and_the_first_answer_wins(pg_dsn, pg_journal):
    """After a takeover the old owner's own conclusion is refused; a gateway answer is anyone's."""
    a, b = await joined(pg_journal()), await joined(pg_journal())
    await a.intent(entry("k1"))
    expire(pg_dsn, a)
    assert [e.key for e in await b.claim(10)] == ["k1"]
    with pytest.raises(bga.LeaseLost):
        await a.finished("k1", lost())  # its conclusion, under a claim that is gone
    assert not await a.heartbeat()  # buried by the claim: its lease is gone for good
    assert await a.finished("k1", result(b"held")) is None  # the gateway's answer: recorded
    assert await b.finished("k1", lost()) == result(b"held")  # the first end stands for b too
    assert await b.finished("k1", result(b"late")) == result(b"held")
    with pytest.raises(bga.DuplicateIntent, match="ended"):
        await b.intent(entry("k1"))  # the same key again: it ended
    (only,) = await b.entries(GATEWAY, SHOP)
    assert only.outcome == result(b"held")


async def test_a_throttled_refusal_is_a_conclusion_fenced_by_the_claim(pg_dsn, pg_journal):
    """All attempts throttled say nothing of the RequestID: a stale sender cannot end the entry."""
    a, b = await joined(pg_journal()), await joined(pg_journal())
    await a.intent(entry("k1"))
    expire(pg_dsn, a)
    assert [e.key for e in await b.claim(10)] == ["k1"]  # b re-sends it: a task may exist now
    with pytest.raises(bga.LeaseLost):
        await a.finished("k1", bga.JournalOutcome("rejected", 429, b"slow down"))
    assert await a.finished("k1", bga.JournalOutcome("rejected", 422, b"no")) is None  # an answer
    assert row(pg_dsn, b, "k1")[2] == "rejected"


async def test_an_acknowledged_entry_is_never_concluded_not_sent(pg_dsn, pg_journal):
    """A sender that saw nothing leave cannot overrule an acknowledgement on record."""
    a = await joined(pg_journal())
    await a.intent(entry("k1"))
    await a.acknowledged("k1", "r1", f"{BASE}/async/status/r1", RESULT)
    with pytest.raises(bga.LeaseLost):
        await a.finished("k1", bga.JournalOutcome("not_sent", message="cannot reach"))
    assert row(pg_dsn, a, "k1")[2] is None  # still unfinished: its polls decide


async def test_nothing_is_recorded_or_claimed_under_a_lease_that_ran_out(pg_dsn, pg_journal):
    """A worker whose lease ran out records no intent (nothing is sent) and claims nothing."""
    a, b = await joined(pg_journal()), await joined(pg_journal())
    await b.intent(entry("k0"))
    await b.release()
    expire(pg_dsn, a)
    with pytest.raises(bga.LeaseLost, match="nothing was sent"):
        await a.intent(entry("k1"))
    assert await a.claim(10) == []  # k0 is nobody's, but a is not alive to take it
    assert [e.key for e in await b.entries(GATEWAY, SHOP)] == ["k0"]


async def test_an_entry_handed_back_is_anyones_and_unfinished_gives_ones_own(pg_dsn, pg_journal):
    """`unfinished` gives this worker's own entries and claims nobody's; a handed-back one too."""
    a, b = await joined(pg_journal()), await joined(pg_journal())
    await a.intent(entry("k1"))
    await a.intent(entry("k2", created_at=2_000.0))
    await b.intent(entry("k3"))
    assert [e.key for e in await a.unfinished(GATEWAY, SHOP)] == ["k1", "k2"]  # not b's k3
    await a.hand_back("k2")
    assert row(pg_dsn, a, "k2")[0] is None  # nobody's
    assert [e.key for e in await b.unfinished(GATEWAY, SHOP)] == ["k3", "k2"]  # oldest first
    assert row(pg_dsn, b, "k2")[:2] == (b.worker, 2)  # b's now, a new epoch
    with pytest.raises(bga.LeaseLost):
        await a.finished("k2", lost())
    assert await b.finished("k2", lost()) is None


async def test_an_ended_entry_leaves_no_epoch_behind(pg_journal):
    """Epochs are kept only for entries still open here (a long-lived worker does not grow)."""
    a, b = await joined(pg_journal()), await joined(pg_journal())
    for key in ("k1", "k2", "k3"):
        await a.intent(entry(key, tracking_id=key))
    await a.finished("k1", result())
    await b.finished("k2", result())  # ended elsewhere: learnt through `outcomes`
    assert await a.outcomes(["k2"]) == {"k2": result()}
    await a.hand_back("k3")
    assert a._epochs == {}


async def test_a_current_schema_is_not_created_again(pg_dsn, pg_journal):
    """Opening on a current schema runs no DDL: it does not wait for the migration's lock."""
    await joined(pg_journal())
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("SELECT pg_advisory_lock(8675309)")  # as a migration under way would hold
        with anyio.fail_after(10):
            await joined(pg_journal())
        c.execute("SELECT pg_advisory_unlock(8675309)")


async def test_released_entries_are_claimable_at_once(pg_journal):
    """A closing worker hands its unfinished entries back; finished ones stay as they are."""
    a, b = await joined(pg_journal()), await joined(pg_journal())
    await a.intent(entry("k1"))
    await a.intent(entry("k2", tracking_id="order-43"))
    await a.finished("k2", result())
    await a.release()
    assert [e.key for e in await b.claim(10)] == ["k1"]


async def test_the_guard_refuses_a_second_intent_for_one_tracking_id(pg_journal):
    """With the guard, a second submit of a payment for the same order is refused unsent."""
    a, b = await joined(pg_journal(one_intent_per_tracking_id=True)), await joined(pg_journal())
    await a.intent(entry("k1"))
    with pytest.raises(bga.DuplicateIntent) as refused:
        await a.intent(entry("k2"))
    assert refused.value.key == "k1"
    assert isinstance(refused.value, bga.JournalError)  # the Gateway sends nothing
    await a.intent(entry("k1"))  # the same submit again: not a second one
    await b.intent(entry("k3"))  # no guard on that journal
    await a.intent(entry("k4", operation="refund"))  # another operation
    with pytest.raises(bga.DuplicateIntent, match="live worker"):
        await b.intent(entry("k1"))  # a's, and a is alive
    await a.finished("k1", bga.JournalOutcome("rejected", 422, b"{}"))
    await a.intent(entry("k5", tracking_id="order-44"))
    await a.finished("k5", bga.JournalOutcome("rejected", 422, b"{}"))
    await a.intent(entry("k6", tracking_id="order-44"))  # the refused one made nothing


async def test_a_notification_ends_the_entry_where_it_is_and_wakes_its_owner(pg_journal):
    """Recorded, matched, ended and announced in one transaction; the owner hears its key."""
    a, b = await joined(pg_journal()), await joined(pg_journal())
    await a.intent(entry("k1", created_at=2_000.0))
    await a.intent(entry("k2", tracking_id="order-43"))
    note = bga.JournalNotification(GATEWAY, SHOP, "u1", "order-42", "successful", b"n", 3.0)
    ended = result(b"notified")

    def match(**options: Any) -> bga.NotificationMatch:
        values: dict[str, Any] = {
            "tracking_id": "order-42",
            "operations": ["payment"],
            "created_at": 2_001.0,
            "skew": 5.0,
            "outcome": lambda _key: ended,
        }
        return bga.NotificationMatch(**{**values, **options})

    # An earlier transaction with that tracking id (made before the entry) is not its.
    assert await b.match_notification(note, match(created_at=1_000.0)) is None
    assert await b.match_notification(note, match(operations=["refund"])) is None
    assert await b.match_notification(note, match()) == "k1"
    with anyio.fail_after(10):
        assert await a.woken(5.0) == ["k1"]
    assert await a.outcomes(["k1", "k2"]) == {"k1": ended}
    assert await a.finished("k1", result(b"poll")) == ended  # the poll's answer is late
    # A uid that ended an entry ends no other.
    await a.intent(entry("k3", tracking_id="order-42", created_at=2_000.0))
    assert await b.match_notification(note, match()) is None
    notes = await b.notifications(GATEWAY, SHOP)
    assert [n.key for n in notes] == [None, None, "k1", None]


async def test_two_workers_create_the_schema_at_once(pg_dsn, pg_journal):
    """The first use creates the schema; two workers doing it at once both succeed."""
    a, b = pg_journal(), pg_journal()
    async with anyio.create_task_group() as tg:
        tg.start_soon(joined, a)
        tg.start_soon(joined, b)
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        (version,) = c.execute(f"SELECT version FROM {a.schema}.meta").fetchall()  # noqa: S608
    assert version == (1,)


async def test_an_unreachable_server_is_a_typed_error_without_the_password(open_gateway):
    """No server: JournalError naming host and port, never the password; nothing opens."""
    journal = bga.PostgresJournal(
        "postgresql://shop:hunter2@127.0.0.1:9/payments", connect_timeout=1.0
    )
    assert "hunter2" not in repr(journal)
    with pytest.raises(bga.JournalError) as failed:
        await journal.join(GATEWAY, SHOP)
    assert "127.0.0.1:9/payments" in str(failed.value)
    assert "hunter2" not in str(failed.value)
    with pytest.raises(bga.JournalError):
        async with open_gateway(journal=journal, autojump=False):
            pytest.fail("the Gateway opened without its journal")


def test_bad_arguments_name_the_field():
    with pytest.raises(bga.InvalidRequest, match="schema"):
        bga.PostgresJournal("postgresql://x", schema="Robert'); DROP TABLE students;--")
    with pytest.raises(bga.InvalidRequest, match="lease"):
        bga.PostgresJournal("postgresql://x", lease=0.1)
    with pytest.raises(bga.InvalidRequest, match="connect_timeout: must be less than a third"):
        bga.PostgresJournal("postgresql://x", lease=30, connect_timeout=10)
    with pytest.raises(bga.InvalidRequest, match="pool_size"):
        bga.PostgresJournal("postgresql://x", pool_size=2)
    assert bga.PostgresJournal("postgresql://x", lease=2).lease == 2  # its timeout fits itself
    # libpq's own message about a malformed URL quotes it, password and all: not repeated.
    with pytest.raises(bga.InvalidRequest, match="dsn") as unreadable:
        bga.PostgresJournal("postgresql://shop:hunter2@[::1/payments")
    assert "hunter2" not in str(unreadable.value)
    assert isinstance(bga.Gateway(BASE, SHOP_ID, SECRET, journal="postgresql://x/y").journal,
                      bga.PostgresJournal)  # fmt: skip


# --- Gateways on one journal ---------------------------------------------------------------


async def hears_nothing(timeout: float) -> list[str] | None:
    """A listener that hears no wake-up (stands in for `PostgresJournal.woken`)."""
    await anyio.sleep_forever()


async def test_a_notification_to_worker_b_resolves_the_job_awaited_on_worker_a(
    open_gateway, router: respx.MockRouter, pg_journal
):
    """B takes the notification; A's job resolves with it without a single poll of its own."""
    router.post(PAYMENTS).respond(200, json=ack())
    polls = router.get(RESULT).respond(200, json=transaction())
    # Time stands still: A's first poll never comes; only the wake-up can end the job.
    async with (
        open_gateway(journal=pg_journal(), autojump=False) as a,
        open_gateway(journal=pg_journal(), autojump=False) as b,
    ):
        job = await a.submit(payment(notification_url="https://shop.test/hook"))
        note = await b.deliver(*notification())
        assert note.job is None  # not B's job
        with anyio.fail_after(10):
            paid = await job
        assert paid.uid == "u1"
        assert a.pending == 0
    assert polls.call_count == 0
    (recorded,) = await a.journal.entries(a.base_url, a.shop_id)
    assert recorded.outcome is not None
    assert recorded.outcome.kind == "result"
    assert a.replay(recorded) is not None


async def test_a_missed_wake_up_is_caught_by_the_next_poll(
    open_gateway, router: respx.MockRouter, pg_journal, clock
):
    """A's listener hears nothing; its poll then finds B's recorded end, which stands."""
    router.post(PAYMENTS).respond(200, json=ack())
    polls = router.get(RESULT).respond(200, json=transaction(status="failed", message="late"))
    deaf = pg_journal()

    deaf.woken = hears_nothing  # type: ignore[method-assign]
    async with (
        open_gateway(journal=deaf, autojump=False) as a,
        open_gateway(journal=pg_journal(), autojump=False) as b,
    ):
        job = await a.submit(payment())
        assert (await b.deliver(*notification())).job is None
        await clock.advance(600.0)  # A's polls come
        with anyio.fail_after(10):
            paid = await job
    assert polls.call_count == 1
    assert paid.status == "successful"  # the recorded end, not the poll's "failed"


async def test_a_gateway_takes_over_a_dead_workers_entries(
    open_gateway, router: respx.MockRouter, pg_dsn, pg_journal, clock
):
    """The acknowledged entry is polled, the unacknowledged one re-sent with its own RequestID."""
    sent: list[str] = []

    def post(request: httpx.Request) -> httpx.Response:
        if sent_json(request)["request"]["tracking_id"] == "order-42":
            return httpx.Response(200, json=ack("r1"))
        sent.append(request.headers["RequestID"])
        return httpx.Response(200, json=ack("r2"))

    router.post(PAYMENTS).mock(side_effect=post)
    router.get(RESULT).respond(200, json=transaction())
    router.get(f"{BASE}/async/result/r2").respond(200, json=transaction("u2"))
    async with open_gateway(journal=pg_journal(), autojump=False) as b:
        # A worker that died: one acknowledged submit, one that may not have left.
        async with open_gateway(journal=(dead := pg_journal()), autojump=False, drain=False) as a:
            first = await a.submit(payment())
            a.journal.release = _stay  # type: ignore[method-assign]  # it dies, releasing nothing
            unsent = a._submitter.entry(payment(tracking_id="order-43"), idempotency_key=None,
                                        tag="t")  # fmt: skip
            await a.journal.intent(unsent)
            expire(pg_dsn, dead)
        assert isinstance(first.exception(), bga.JobAbandoned)
        with anyio.fail_after(10):
            jobs = await b.resume_all()
            await clock.advance(600.0)  # the re-sent submit's first poll comes
            results = [await job for job in jobs]
    assert sorted(tx.uid for tx in results) == ["u1", "u2"]
    assert sent == [unsent.key]  # re-sent with the same RequestID, once
    assert {row(pg_dsn, dead, e.key)[1:] for e in await b.journal.entries(GATEWAY, SHOP)} == {
        (2, "result")  # both claimed once, both ended
    }


async def _stay() -> None:
    return None


async def ended(journal: bga.Journal, key: str) -> bga.JournalEntry:
    """The entry ``key`` once it has an outcome (another worker's beat is ending it)."""
    with anyio.fail_after(10):
        while True:
            found = [e for e in await journal.entries(GATEWAY, SHOP) if e.key == key]
            if found and found[0].finished:
                return found[0]
            await anyio.sleep(0.05)


async def test_the_heartbeat_takes_over_without_being_asked(
    open_gateway, router: respx.MockRouter, pg_dsn, pg_journal, clock
):
    """A Gateway opened beside a dead worker's entry polls it at its first beat."""
    router.get(RESULT).respond(200, json=transaction())
    dead = await joined(pg_journal())
    await dead.intent(entry("k1", created_at=clock()))
    await dead.acknowledged("k1", "r1", f"{BASE}/async/status/r1", RESULT)
    expire(pg_dsn, dead)
    async with open_gateway(journal=pg_journal(lease=3.0), autojump=False) as b:
        done = await ended(b.journal, "k1")
    assert done.outcome is not None
    assert done.outcome.kind == "result"
    assert row(pg_dsn, dead, "k1")[1] == 2


async def test_a_worker_whose_lease_ran_out_drops_its_jobs(
    open_gateway, router: respx.MockRouter, pg_dsn, pg_journal
):
    """Its entry is another worker's now: the job here ends abandoned; no end is written."""
    router.post(PAYMENTS).respond(200, json=ack())
    router.get(RESULT).respond(200, json=transaction())
    async with open_gateway(journal=(mine := pg_journal(lease=6.0)), autojump=False) as a:
        job = await a.submit(payment())
        other = await joined(pg_journal())  # ready first: A's next beat is seconds away
        expire(pg_dsn, mine)
        (taken,) = await other.claim(10)
        with anyio.fail_after(10), pytest.raises(bga.JobAbandoned, match="lease ran out"):
            await job
        assert mine.worker is not None  # joined again, as a new worker
        assert await other.claim(10) == []  # and it took nothing back
    assert row(pg_dsn, mine, taken.key)[1:] == (2, None)  # the new owner's, unfinished


async def test_a_listener_cut_off_reconnects_and_says_wake_ups_may_be_lost(pg_dsn, pg_journal):
    """The server drops the listener: one JournalError, then None (check every pending key)."""
    a = await joined(pg_journal())
    assert await a.woken(0.01) == []
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s",
            (f"LISTEN {a.schema}_ended",),
        )
    with pytest.raises(bga.JournalError):
        await a.woken(1.0)
    assert await a.woken(0.01) is None  # reconnected: wake-ups may have been missed
    assert await a.woken(0.01) == []


async def test_after_a_reconnect_every_pending_job_is_checked(
    open_gateway, router: respx.MockRouter, pg_journal
):
    """A wake-up missed while A's listener was away: A checks its pending keys and resolves."""
    router.post(PAYMENTS).respond(200, json=ack())
    polls = router.get(RESULT).respond(200, json=transaction())
    delivered = anyio.Event()
    away = pg_journal()

    async def reconnected(timeout: float) -> list[str] | None:
        await delivered.wait()  # the wake-up went out while this listener was away
        away.woken = hears_nothing  # type: ignore[method-assign]
        return None

    away.woken = reconnected  # type: ignore[method-assign]
    async with (
        open_gateway(journal=away, autojump=False) as a,
        open_gateway(journal=pg_journal(), autojump=False) as b,
    ):
        job = await a.submit(payment())
        await b.deliver(*notification())
        delivered.set()
        with anyio.fail_after(10):
            assert (await job).uid == "u1"
    assert polls.call_count == 0


async def test_an_undetermined_submit_is_handed_back_and_a_worker_takes_it_up(
    open_gateway, router: respx.MockRouter, pg_dsn, pg_journal, clock
):
    """A's submit ends undetermined: its entry is nobody's, and a worker's beat re-sends it.

    Which worker is a race (A's own first claim may run after its hand-back): either may.
    """
    keys: list[str] = []

    def post(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["RequestID"])
        if len(keys) == 1:
            return httpx.Response(502, text="bad gateway")  # it may have been created
        return httpx.Response(200, json=ack())

    router.post(PAYMENTS).mock(side_effect=post)
    router.get(RESULT).respond(200, json=transaction())
    taken: list[bga.Job[Any]] = []
    came = anyio.Event()

    def take(job: bga.Job[Any]) -> None:
        taken.append(job)
        came.set()

    once = bga.Limits(submit_attempts=1)
    async with open_gateway(
        journal=(mine := pg_journal()), autojump=False, limits=once, on_take_over=take
    ) as a:
        with pytest.raises(bga.SubmitIndeterminate) as undetermined:
            await a.submit(payment())
        key = undetermined.value.idempotency_key
        owner, epoch, _ = row(pg_dsn, mine, key)
        assert owner is None or epoch > 1  # handed back at once (and perhaps claimed again)
        async with open_gateway(journal=pg_journal(lease=3.0), autojump=False, on_take_over=take):
            with anyio.fail_after(10):
                await came.wait()  # B's first beat claims it (or A's, if it came late)
                await clock.advance(600.0)
                paid = await taken[0]
    assert paid.uid == "u1"
    assert keys == [key, key]  # re-sent with its own RequestID


async def test_a_stale_owners_conclusion_abandons_its_job(
    open_gateway, router: respx.MockRouter, pg_dsn, pg_journal, clock
):
    """A's poll finds the task unknown after B took the entry: A writes nothing; B's to end."""
    router.post(PAYMENTS).respond(200, json=ack())
    router.get(RESULT).respond(404, json={"status": "unknown", "request_id": "r1"})
    async with open_gateway(journal=(mine := pg_journal()), autojump=False) as a:
        job = await a.submit(payment())
        other = await joined(pg_journal())
        expire(pg_dsn, mine)
        (taken,) = await other.claim(10)
        await clock.advance(600.0)
        with anyio.fail_after(10), pytest.raises(bga.JobAbandoned, match="another worker"):
            await job
    assert row(pg_dsn, mine, taken.key)[1:] == (2, None)  # B's, unfinished: B concludes


async def test_an_end_recorded_while_the_submit_was_out_is_the_jobs(
    open_gateway, pg_journal, clock
):
    """A notification ended the entry on B before A's refusal came back: the result stands."""
    b = await joined(pg_journal())

    class Meanwhile(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            key = request.headers["RequestID"]
            body = json.dumps(transaction()).encode()
            assert (
                await b.finished(key, bga.JournalOutcome("result", 200, sealed(key, body))) is None
            )
            return httpx.Response(422, json={"message": "Duplicate", "errors": {}})

    def sealed(key: str, body: bytes) -> bytes:
        return gw._sealer.seal(body, key=f"{key}/outcome")

    async with open_gateway(journal=pg_journal(), autojump=False, transport=Meanwhile()) as gw:
        with anyio.fail_after(10):
            paid = await (await gw.submit(payment()))
    assert paid.uid == "u1"
