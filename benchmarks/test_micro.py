"""Micro-benchmarks of the hot paths (pytest-benchmark): ``nox -s bench`` runs them.

python -m pytest benchmarks/test_micro.py --benchmark-json benchmarks/results/micro.json
"""

from __future__ import annotations

import json
import random

import httpx
import pytest

import begateway_async as bga
from begateway_async import _protocol as p
from begateway_async._clock import Timebase
from begateway_async._scheduler import Scheduler
from begateway_async._serde import decode_json, parse_transaction, request_body
from begateway_async.testing import VirtualClock
from begateway_async.testing._ledger import Ledger

pytest.importorskip("pytest_benchmark")


def _answer() -> bytes:
    """A realistic ~1.5 KB classic transaction answer, from the simulator's books."""
    ledger = Ledger()
    request = {
        "amount": 3245,
        "currency": "EUR",
        "description": "Order 42",
        "tracking_id": "order-42",
        "customer": {"ip": "127.0.0.1", "email": "jd@example.com"},
        "billing_address": {"first_name": "John", "last_name": "Doe", "country": "US"},
        "credit_card": {"number": "4200000000000000", "exp_month": "01", "exp_year": "2030"},
    }
    outcome = ledger.process(
        "361", "transactions", "payments", request, now=1.7e9, base_url="https://g"
    )
    return json.dumps(ledger.render(outcome, api_version=2, base_url="https://g")).encode()


ANSWER = _answer()
HEADERS = httpx.Headers({"content-type": "application/json"})


def test_structure_a_transaction(benchmark):
    """Decode and structure one transaction answer into `Transaction`."""
    tx = benchmark(lambda: parse_transaction(decode_json(ANSWER)))
    assert tx.successful


def test_unstructure_a_request(benchmark):
    """Turn a payment request into its JSON body."""
    payment = bga.Payment(
        amount=3245,
        currency="EUR",
        description="Order 42",
        tracking_id="order-42",
        customer=bga.Customer(ip="127.0.0.1", email="jd@example.com"),
        credit_card=bga.CreditCard(number="4200000000000000", exp_month=1, exp_year=2030),
    )
    body = benchmark(request_body, payment)
    assert body is not None


def test_decide_one_answer(benchmark):
    """The protocol decision for one 200 result answer."""
    outcome = benchmark(lambda: p.decide_poll(200, HEADERS, ANSWER, now=1.7e9, created_at=1.7e9))
    assert isinstance(outcome, p.Done)


class _Item:
    __slots__ = ("polling",)

    def __init__(self) -> None:
        self.polling = True


async def _noop(item: _Item) -> None:
    del item


def test_scheduler_tick_over_100k_pending(benchmark):
    """One scheduler tick with 10^5 pending jobs, 1 000 of them due (cap 1 000 per host)."""
    rng = random.Random(1)

    def setup():
        scheduler: Scheduler[_Item] = Scheduler(Timebase(VirtualClock()), _noop, cap=1000)
        for _ in range(100_000):
            scheduler.schedule("gw", rng.uniform(0.0, 100.0), _Item())
        return (scheduler,), {}

    def tick(scheduler):
        return scheduler.tick(1.0)

    due, _ = benchmark.pedantic(tick, setup=setup, rounds=20)
    assert 900 < len(due) <= 1000
