"""The real client against the simulator in process: every operation, the protocol, the books."""

from __future__ import annotations

import json
import random

import httpx
import pytest

import begateway_async as bga
from begateway_async.testing import (
    DEMO_SHOPS,
    Fixed,
    FromRequest,
    LogNormal,
    Simulator,
    SimulatorTransport,
    Uniform,
)
from fakes import DECLINED, GOOD, THREE_DS, card, payment

BASE = "https://gateway.simulator.test"  # as in this folder's conftest
SECRET = DEMO_SHOPS["361"]

pytestmark = pytest.mark.anyio


async def test_payment_and_its_children(connect, simulator):
    """Refund, capture, void, chargeback: each checked against its parent."""
    async with connect() as gw:
        paid = await gw.payment(payment(1000))
        assert (paid.status, paid.type, paid.amount) == ("successful", "payment", 1000)
        assert paid.bank is not None
        assert paid.bank.status == "successful"
        refund = await gw.refund(bga.Refund(parent_uid=paid.uid, amount=400, reason="return"))
        assert (refund.type, refund.parent_uid) == ("refund", paid.uid)
        with pytest.raises(bga.JobFailed) as over:
            await gw.refund(bga.Refund(parent_uid=paid.uid, amount=700, reason="return"))
        assert over.value.status_code == 422
        assert over.value.errors == {"amount": ["can't be greater than 600"]}
        held = await gw.authorization(bga.Authorization(**_card_fields(500)))
        captured = await gw.capture(bga.Capture(parent_uid=held.uid, amount=300))
        voided = await gw.void(bga.Void(parent_uid=held.uid, amount=200))
        assert (captured.type, voided.type) == ("capture", "void")
        with pytest.raises(bga.JobFailed):
            await gw.capture(bga.Capture(parent_uid=held.uid, amount=1, duplicate_check=False))
        with pytest.raises(bga.JobFailed, match="not a successful authorization"):
            await gw.capture(bga.Capture(parent_uid=paid.uid, amount=1))
        chargeback = await gw.chargeback(bga.Chargeback(parent_uid=paid.uid, amount=100))
        assert chargeback.type == "chargeback"
    assert simulator.stats.transactions == 6


def _card_fields(amount: int) -> dict:
    return {"amount": amount, "currency": "EUR", "description": "Hold", "credit_card": card()}


async def test_tokens_payouts_checkups(connect):
    """A tokenization gives a token that pays later; payouts (both paths) and checkups answer."""
    async with connect() as gw:
        tokenized = await gw.tokenization(bga.Tokenization(**_card_fields(100)))
        assert tokenized.card is not None
        assert tokenized.card.token
        again = await gw.payment(
            bga.Payment(
                amount=250,
                currency="USD",
                description="Repeat",
                credit_card=bga.CreditCard(token=tokenized.card.token),
            )
        )
        assert again.successful
        assert again.card is not None
        assert again.card.last_4 == "0000"
        payout = await gw.payout(
            bga.Payout(amount=100, currency="USD", description="Win", recipient_credit_card=card())
        )
        credit = await gw.payout(
            bga.Payout(
                amount=101,
                currency="USD",
                description="Win",
                credit_card=bga.CreditCard(token=tokenized.card.token),
                legacy=True,
            )
        )
        assert (payout.type, credit.type) == ("payout", "credit")
        checkup = await gw.checkup(bga.Checkup(**_card_fields(100), tracking_id="risk-1"))
        assert checkup.type == "checkup"
        assert checkup.raw["transaction"]["be_protected_verification"]["status"] == "successful"
        with pytest.raises(bga.JobFailed) as unknown_token:
            await gw.payment(
                bga.Payment(
                    amount=1,
                    currency="USD",
                    description="x",
                    credit_card=bga.CreditCard(token="nope"),
                )
            )
        assert unknown_token.value.errors == {"credit_card": {"token": ["does not exist"]}}


async def test_test_cards(connect, simulator):
    """4200… succeeds, 4005… is declined, a 3-D Secure card is incomplete until passed."""
    async with connect() as gw:
        ok = await gw.payment(payment(1, GOOD))
        declined = await gw.payment(payment(2, DECLINED))
        pending = await gw.payment(payment(3, THREE_DS))
        assert (ok.status, declined.status, pending.status) == (
            "successful",
            "failed",
            "incomplete",
        )
        assert declined.message == "Payment was declined"
        assert pending.redirect_url == f"{BASE}/process/{pending.uid}"
        assert pending.three_d_secure is not None
        assert pending.three_d_secure.ve_status == "Y"
        assert simulator.complete_three_d_secure(pending.uid) == "successful"
        assert (await gw.transaction(pending.uid)).status == "successful"
        expired = bga.CreditCard(number=GOOD, exp_month=1, exp_year=2010)
        with pytest.raises(bga.JobRejected, match="Date is expired") as refused:
            await gw.payment(
                bga.Payment(amount=4, currency="USD", description="x", credit_card=expired)
            )
        # Validation inside the task: a JobFailed, and a Rejected like a refused submit.
        assert isinstance(refused.value, bga.JobFailed)
        assert isinstance(refused.value, bga.Rejected)
        assert refused.value.status_code == 422
        assert "credit_card" in refused.value.errors


async def test_queries(connect):
    """The uid query, the tracking-id query (ten at most, newest first) and the balance query."""
    async with connect() as gw:
        uids = [(await gw.payment(payment(100 + i, tracking_id="same"))).uid for i in range(12)]
        found = await gw.transactions_by_tracking_id("same")
        assert [tx.uid for tx in found] == uids[::-1][:10]
        assert await gw.transactions_by_tracking_id("nothing") == []
        with pytest.raises(bga.TransactionNotFound, match="Record not found") as missing:
            await gw.transaction("no-such-uid")
        assert isinstance(missing.value, bga.JobFailed)  # as before, for code that caught that
        assert not isinstance(missing.value, bga.Rejected)
        assert (await gw.transaction(uids[0])).amount == 100
        with pytest.raises(bga.JobFailed) as missing:
            await gw.transaction("no-such-uid")
        assert (missing.value.status_code, missing.value.message) == (404, "Record not found")
        balance = await gw.balance(bga.BalanceQuery(currency="EUR"))
        assert (balance.currency, balance.gateway_id) == ("EUR", 645)


async def test_v3_shape(connect):
    """With X-API-Version: 3 the simulator answers flat bodies, which parse the same."""
    async with connect(api_version=3) as gw:
        tx = await gw.payment(payment(5))
        assert tx.code == "S.0000"
        assert "transaction" in tx.raw
        assert tx.raw["transaction"]["status"] == "successful"
        assert tx.receipt_url == tx.raw["links"]["receipt_url"]
        with pytest.raises(bga.JobFailed) as failed:
            await gw.refund(bga.Refund(parent_uid=tx.uid, amount=9999, reason="r"))
        assert failed.value.code == "E.1025"


async def test_wrong_credentials(connect):
    """A wrong secret is refused at submit with the documented 401 body; no task exists."""
    async with connect(secret="wrong") as gw:
        with pytest.raises(bga.RequestRejected) as info:
            await gw.submit(payment())
    assert info.value.status_code == 401
    assert info.value.body == {"message": "Invalid shop_id/secret_key."}


async def test_retention_and_one_shot(simulator, clock):
    """Results are kept 24 h from creation then 404; an error body is served once then 404."""
    async with httpx.AsyncClient(
        transport=SimulatorTransport(simulator), base_url=BASE, auth=("361", SECRET)
    ) as http:
        good = (await http.post("/async/transactions/payments", json={"request": _wire(1)})).json()
        bad = (
            await http.post("/async/transactions/payments", json={"request": {"amount": 1}})
        ).json()
        assert good["status_url"] == f"{BASE}/async/status/{good['request_id']}"
        processing = await http.get(good["status_url"])
        assert processing.json() == {"status": "processing", "request_id": good["request_id"]}
        await clock.advance(2)
        completed = (await http.get(good["status_url"])).json()
        assert completed["status"] == "completed"
        assert completed["response_url"] == good["response_url"]
        for _ in range(3):
            assert (await http.get(good["response_url"])).status_code == 200
        first = await http.get(bad["response_url"])
        assert first.status_code == 422
        assert first.json()["errors"]["currency"] == ["can't be blank"]
        assert (await http.get(bad["response_url"])).status_code == 404
        await clock.advance(24 * 3600 - 2)
        expired = await http.get(good["response_url"])
        assert expired.status_code == 404
        assert expired.json() == {"status": "unknown", "request_id": good["request_id"]}
        assert (await http.get("/async/result/never-issued")).status_code == 404


def _wire(amount: int, number: str = GOOD, **extra) -> dict:
    return {
        "amount": amount,
        "currency": "USD",
        "description": "x",
        "credit_card": {"number": number, "exp_month": "01", "exp_year": "2030"},
        **extra,
    }


async def test_sync_mode_and_invalid_json(simulator):
    """The same paths without /async answer synchronously; invalid JSON is refused at once."""
    async with httpx.AsyncClient(
        transport=SimulatorTransport(simulator), base_url=BASE, auth=("361", SECRET)
    ) as http:
        simulator.processing = 0.0
        answer = await http.post("/transactions/payments", json={"request": _wire(7)})
        assert answer.status_code == 200
        assert answer.json()["transaction"]["status"] == "successful"
        invalid = await http.post("/async/transactions/payments", content=b"{not json")
        assert invalid.status_code == 400
        missing = await http.post("/transactions/payments", json={"amount": 1})
        assert missing.status_code == 422
        assert missing.json()["message"] == "Request section missing."


async def test_duplicate_check(simulator, clock):
    """Same amount and card within 30 s is refused, unless duplicate_check is false."""
    async with httpx.AsyncClient(
        transport=SimulatorTransport(simulator), base_url=BASE, auth=("361", SECRET)
    ) as http:
        simulator.processing = 0.0

        async def pay(**extra):
            return await http.post("/transactions/payments", json={"request": _wire(50, **extra)})

        assert (await pay()).status_code == 200
        duplicate = await pay()
        assert duplicate.status_code == 422
        assert "Duplicate transaction" in duplicate.json()["message"]
        assert (await pay(duplicate_check=False)).status_code == 200
        await clock.advance(30)
        assert (await pay()).status_code == 200


async def test_request_id_idempotency(connect, simulator):
    """The same RequestID within 24 h is one task and one transaction; the answer is replayed."""
    async with connect() as gw:
        first = await gw.submit(payment(8), idempotency_key="key-8")
        second = await gw.submit(payment(8), idempotency_key="key-8")
        assert first is second
        await first
    assert simulator.stats.transactions == 1
    assert simulator.stats.replays == 1
    assert simulator.stats.jobs[first.request_id].submits == 2


@pytest.mark.parametrize(
    ("distribution", "low", "high"),
    [
        (Fixed(3.0), 3.0, 3.0),
        (Uniform(1.0, 2.0), 1.0, 2.0),
        (LogNormal(1.0, 0.0), 1.0, 1.0),
        (FromRequest(lambda _operation, request: request["amount"] / 100), 1.23, 1.23),
    ],
)
async def test_processing_distributions(clock, distribution, low, high):
    """The bank's time comes from the configured distribution, per operation."""
    simulator = Simulator(clock=clock, processing={"payment": distribution, "*": 99.0})
    gw = bga.Gateway(BASE, 361, SECRET, transport=SimulatorTransport(simulator), clock=clock)
    async with clock.autojump(), gw:
        job = await gw.submit(payment(123))
        await job
    stats = simulator.stats.jobs[job.request_id]
    assert low - 1e-6 <= stats.ready_at - stats.created_at <= high + 1e-6  # epoch floats
    assert stats.served_at is not None
    assert stats.served_at >= stats.ready_at


def test_lognormal_from_percentiles():
    """LogNormal.from_percentiles gives the asked median and 99th percentile."""
    rng = random.Random(1)
    draws = sorted(
        LogNormal.from_percentiles(1.0, 10.0).sample(rng, "payment", None) for _ in range(20_000)
    )
    assert 0.95 < draws[10_000] < 1.05
    assert 9.0 < draws[19_800] < 11.0


async def test_counters(connect, simulator):
    """Every request is counted per endpoint and per job, and readable over HTTP."""
    async with connect(poll=bga.PollPolicy(status_first=True, first_delay=0.5, jitter=0.0)) as gw:
        job = await gw.submit(payment(9))
        await job
    stats = simulator.stats.jobs[job.request_id]
    assert stats.submits == 1
    assert stats.status_polls >= 2
    assert stats.result_polls == 1
    assert stats.requests == job.polls + 1
    async with httpx.AsyncClient(transport=SimulatorTransport(simulator), base_url=BASE) as http:
        summary = (await http.get("/_simulator/stats")).json()
        one = (await http.get(f"/_simulator/jobs/{job.request_id}")).json()
        every = (await http.get("/_simulator/jobs")).json()
    assert summary["requests"]["submit"] == 1
    assert summary["requests_total"] == stats.requests
    assert one["requests"] == stats.requests
    assert every[job.request_id]["ready_at"] == stats.ready_at
    json.dumps(summary)


async def test_a_wrong_base_path_is_named_in_the_error():
    """A 404 to a submit says which URL answered it and what to check, not only "Not found"."""
    transport = SimulatorTransport(Simulator(processing=0.0))
    async with bga.Gateway(
        "https://gw.test/wrong", 361, DEMO_SHOPS["361"], transport=transport
    ) as gw:
        with pytest.raises(bga.RequestRejected) as refused:
            await gw.submit(bga.StatusQuery(uid="u1"))
    assert refused.value.status_code == 404
    message = str(refused.value)
    assert "nothing at https://gw.test/wrong/async/transactions/u1" in message
    assert "base URL" in message
