"""The journal: intents before the POST, bodies before the waiters, `resume_all` after a restart."""

from __future__ import annotations

import contextlib
import sqlite3
import stat

import anyio
import attrs
import pytest

import begateway_async as bga
from begateway_async.testing import Fault, Faults
from fakes import card, payment

#: The bank takes ten minutes: a Gateway closed right after submitting leaves them pending.
pytestmark = [pytest.mark.anyio, pytest.mark.simulator(bank=600.0)]

HOUR = 3600.0


@pytest.fixture(params=["memory", "sqlite"])
def journal(request, tmp_path):
    """The same journal object across Gateways: kept in memory, or in an SQLite file."""
    if request.param == "memory":
        return bga.MemoryJournal(keep_finished=True)
    return bga.SQLiteJournal(tmp_path / "payments.db")


async def _closed_with_pending(connect, journal, count: int) -> list[str]:
    """Submit ``count`` payments, then close the Gateway before they finish (as a crash would)."""
    async with connect(journal=journal, drain=False, autojump=False) as gw:
        jobs = [
            await gw.submit(payment(100 + i, tracking_id=f"order-{i}"), tag=f"line-{i}")
            for i in range(count)
        ]
    assert all(isinstance(job.exception(), bga.JobAbandoned) for job in jobs)
    return [job.request_id for job in jobs]


async def test_resume_all_polls_acknowledged_jobs(connect, simulator, journal):
    """Jobs left pending by one Gateway finish in the next one, each once, with their tags."""
    request_ids = await _closed_with_pending(connect, journal, 12)
    async with connect(journal=journal) as gw:
        jobs = await gw.resume_all()
        assert sorted(job.request_id for job in jobs) == sorted(request_ids)
        results = [await job for job in jobs]
    assert {job.tag for job in jobs} == {f"line-{i}" for i in range(12)}
    assert all(tx.successful for tx in results)
    assert simulator.stats.transactions == 12
    assert simulator.stats.requests["submit"] == 12  # nothing was sent twice
    assert await journal.unfinished(gw.base_url, gw.shop_id) == []


async def test_resume_all_resends_an_unanswered_submit_with_the_same_request_id(
    connect, simulator, journal
):
    """A submit whose answer was lost is re-sent with its RequestID: one task, one transaction."""
    simulator.faults = Faults(truncate=Fault(script=[True], on={"submit"}))
    limits = bga.Limits(submit_attempts=1)
    async with connect(journal=journal, limits=limits) as gw:
        with pytest.raises(bga.SubmitIndeterminate) as raised:
            await gw.submit(payment(700, tracking_id="order-700"), tag="the one")
    key = raised.value.idempotency_key
    (entry,) = await journal.unfinished(gw.base_url, gw.shop_id)
    assert (entry.key, entry.acknowledged, entry.tag) == (key, False, "the one")
    async with connect(journal=journal) as gw:
        (job,) = await gw.resume_all()
        tx = await job
    assert (tx.successful, tx.amount, job.idempotency_key, job.tag) == (True, 700, key, "the one")
    assert simulator.stats.transactions == 1
    assert simulator.stats.replays == 1  # the gateway recognised the RequestID


async def test_an_acknowledged_job_past_24_hours_expires_on_resume(
    connect, simulator, clock, journal
):
    """After 24 hours the result is gone: the resumed job ends as JobExpired without a poll."""
    await _closed_with_pending(connect, journal, 1)
    await clock.advance(25 * HOUR)
    polls = simulator.stats.requests.total()
    async with connect(journal=journal) as gw:
        (job,) = await gw.resume_all()
        with pytest.raises(bga.JobExpired):
            await job
    assert simulator.stats.requests.total() == polls
    (entry,) = await journal.entries(gw.base_url, gw.shop_id)
    assert entry.outcome is not None
    assert entry.outcome.error == "JobExpired"


def _intent(gw: bga.Gateway, key: str, tracking_id: str | None, created_at: float):
    return bga.JournalEntry(
        key=key,
        gateway=gw.base_url,
        shop_id=gw.shop_id,
        operation="payment",
        method="POST",
        path="/async/transactions/payments",
        body=b"{}",
        headers=(),
        tracking_id=tracking_id,
        tag=None,
        created_at=created_at,
    )


async def test_an_old_unanswered_submit_is_reconciled_by_tracking_id(
    connect, simulator, clock, journal
):
    """Past the key window an intent is never re-sent: the tracking-id query settles it."""
    async with connect(journal=journal) as gw:
        paid = await gw.payment(payment(300, tracking_id="order-300"))
        # Two intents the gateway may or may not have seen, a day old by now:
        await journal.intent(_intent(gw, "key-seen", "order-300", clock() - 25 * HOUR))
        await journal.intent(_intent(gw, "key-never", "order-999", clock() - 25 * HOUR))
        await journal.intent(_intent(gw, "key-anonymous", None, clock() - 25 * HOUR))
        submits = simulator.stats.requests["submit"]
        seen, never, anonymous = await gw.resume_all()
        assert (await seen).uid == paid.uid
        with pytest.raises(bga.JobLost, match="never created one"):
            await never
        with pytest.raises(bga.JobLost, match="no tracking_id"):
            await anonymous
    # Only the two tracking-id queries were submitted, no payment.
    assert simulator.stats.requests["submit"] == submits + 2
    assert simulator.stats.transactions == 1
    assert await journal.unfinished(gw.base_url, gw.shop_id) == []


async def test_a_one_shot_error_body_is_journalled_before_any_waiter_sees_it(
    connect, simulator, journal
):
    """The 422 body the gateway serves once is on record when the job's callbacks run."""
    seen: list[bga.JournalOutcome | None] = []
    async with connect(journal=journal) as gw:
        job = await gw.submit(bga.Refund(parent_uid="no-such-parent", amount=1, reason="x"))

        def on_done(_job: bga.Job[object]) -> None:
            seen.append(entries.get(job.idempotency_key))

        entries: dict[str | None, bga.JournalOutcome | None] = {}
        job.add_done_callback(on_done)
        original = journal.finished

        async def finished(key: str, outcome: bga.JournalOutcome) -> None:
            await original(key, outcome)
            entries[key] = outcome

        journal.finished = finished  # type: ignore[method-assign]
        with pytest.raises(bga.JobFailed) as failed:
            await job
    (outcome,) = seen
    assert outcome is not None
    assert outcome.kind == "failed"
    assert outcome.status_code == failed.value.status_code
    assert outcome.body is not None
    assert b"parent" not in outcome.body.lower()  # sealed, as every body the journal keeps
    (entry,) = [e for e in await journal.entries(gw.base_url, gw.shop_id) if e.outcome]
    opened = gw.unseal(entry).outcome
    assert opened is not None
    assert opened.body is not None
    assert b"parent" in opened.body.lower()


async def test_a_journal_that_cannot_record_the_intent_stops_the_submit(connect, simulator):
    """No intent on record, no POST: the submit raises JournalError and nothing is sent."""

    class Broken(bga.MemoryJournal):
        async def intent(self, entry: bga.JournalEntry) -> None:  # noqa: ARG002
            raise bga.JournalError("disk full")

    async with connect(journal=Broken()) as gw:
        with pytest.raises(bga.JournalError, match="disk full"):
            await gw.submit(payment())
    assert simulator.stats.requests.total() == 0


async def test_sqlite_journal_commits_in_groups_and_erases_card_data(connect, tmp_path):
    """Many concurrent writes share commits; the file is private; bodies go once acknowledged."""
    path = tmp_path / "payments.db"
    commits = 0

    class Counting(bga.SQLiteJournal):
        def _commit(self, writes):  # type: ignore[no-untyped-def]
            nonlocal commits
            commits += 1
            super()._commit(writes)

    async with connect(journal=Counting(path), limits=bga.Limits(concurrent_submits=64)) as gw:
        jobs = [await gw.submit(payment(100 + i)) for i in range(3)]
        async with anyio.create_task_group() as tg:
            for i in range(60):
                tg.start_soon(gw.submit, payment(200 + i))
        for job in jobs:
            await job
    writes = 63 * 3  # intent, acknowledgement, outcome
    assert commits < writes / 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT count(*), count(body), count(outcome) FROM entries").fetchone()
    assert rows == (63, 0, 63)


async def test_an_old_unanswered_query_is_not_looked_up(connect, simulator, clock, journal):
    """A query left unanswered past 24 hours ends as JobLost at once: nothing to reconcile."""
    async with connect(journal=journal) as gw:
        query = attrs.evolve(
            _intent(gw, "key-query", "order-1", clock() - 25 * HOUR),
            operation="tracking_id_query",
            method="GET",
            path="/async/v2/transactions/tracking_id/order-1",
            body=None,
        )
        await journal.intent(query)
        (job,) = await gw.resume_all()
        with pytest.raises(bga.JobLost, match="send it again"):
            await job
    assert simulator.stats.requests.total() == 0


CARD_FIELDS = (b"4200000000000000", b"verification_value", b'"exp_year"')


async def test_an_unanswered_body_is_sealed_in_the_file(connect, simulator, tmp_path):
    """An entry without an answer keeps its body sealed: no card field in any journal file."""
    simulator.faults = Faults(truncate=Fault(script=[True], on={"submit"}))
    path = tmp_path / "payments.db"
    journal = bga.SQLiteJournal(path)
    async with connect(journal=journal, limits=bga.Limits(submit_attempts=1)) as gw:
        with pytest.raises(bga.SubmitIndeterminate):
            await gw.submit(payment(700, tracking_id="order-700"))
        (entry,) = await journal.unfinished(gw.base_url, gw.shop_id)
        assert entry.body is not None
        files = [f for f in tmp_path.iterdir() if f.name.startswith("payments.db")]
        assert {f.name for f in files} >= {"payments.db", "payments.db-wal"}
        for file in files:
            content = file.read_bytes()
            assert not [field for field in CARD_FIELDS if field in content], file.name
    await journal.aclose()  # folds the write-ahead log into the file, and empties it
    wal = tmp_path / "payments.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    assert not [field for field in CARD_FIELDS if field in path.read_bytes()]


async def test_other_credentials_cannot_resend_a_journalled_body(connect, simulator):
    """A Gateway with another secret fails that entry (JournalError), sends nothing, keeps it."""
    simulator.faults = Faults(truncate=Fault(script=[True], on={"submit"}))
    journal = bga.MemoryJournal(keep_finished=True)
    async with connect(journal=journal, limits=bga.Limits(submit_attempts=1)) as gw:
        with pytest.raises(bga.SubmitIndeterminate):
            await gw.submit(payment(700, tracking_id="order-700"))
    sent = simulator.stats.requests.total()
    async with connect("another secret", journal=journal) as gw:
        (job,) = await gw.resume_all()
        with pytest.raises(bga.JournalError, match="other credentials"):
            await job
    assert simulator.stats.requests.total() == sent  # nothing was sent
    assert len(await journal.unfinished(gw.base_url, gw.shop_id)) == 1


async def test_a_one_shot_body_lost_in_a_crash_is_reported_as_a_lost_reply(connect, simulator):
    """The answer was served, the process died before journalling it: the next run says so."""
    dying = anyio.Event()

    class Dying(bga.MemoryJournal):
        """A journal whose process dies while it writes a one-shot body."""

        async def finished(self, key: str, outcome: bga.JournalOutcome) -> None:
            if outcome.kind == "failed":
                dying.set()
                await anyio.sleep_forever()  # killed here: the body never lands
            await super().finished(key, outcome)

    journal = Dying(keep_finished=True)
    expired = payment(tracking_id="order-x", credit_card=card(exp_year=2010))
    async with connect(journal=journal, drain=False) as gw:
        job = await gw.submit(expired)  # refused by the bank's validation: a one-shot 422
        await dying.wait()
    assert simulator.stats.jobs[job.request_id].served_at is not None  # served, and gone
    (entry,) = await journal.unfinished(gw.base_url, gw.shop_id)
    assert entry.acknowledged
    async with connect(journal=journal) as gw:
        (resumed,) = await gw.resume_all()
        with pytest.raises(bga.JobLost) as info:
            await resumed
    assert info.value.after_lost_reply  # not "the gateway does not know the task"
    assert info.value.transactions == ()  # looked up by tracking id: nothing was made
    assert "error body is gone" in str(info.value)
