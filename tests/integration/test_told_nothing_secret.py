"""No secret and no card data in anything the library tells: log records, events, spans, metrics."""

from __future__ import annotations

import base64
import logging
from typing import Any

import attrs
import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.routing import Route

import begateway_async as bga
from begateway_async.testing import Fault, Faults
from fakes import DECLINED, GOOD

pytestmark = pytest.mark.anyio

SECRET = "b8647b68898b084b836474ed8d61ffe117c9a01168d867f24953b776ddcb134d"  # shop 361's
CVV, HOLDER, MONTH, YEAR = "987", "Quentin Secretholder", "11", "2039"
#: Fields a card's data would come under, in any layer.
CARD_FIELDS = ("number", "verification_value", "exp_month", "exp_year", "holder", "credit_card")


def card(number: str, **fields: Any) -> bga.CreditCard:
    values = {"verification_value": CVV, "holder": HOLDER, "exp_month": MONTH, "exp_year": YEAR}
    return bga.CreditCard(number=number, **{**values, **fields})


def order(amount: int, number: str, **fields: Any) -> bga.Payment:
    return bga.Payment(
        amount=amount, currency="USD", description="Order", tracking_id=f"o-{amount}",
        notification_url="http://shop.test/notify", credit_card=card(number, **fields),
    )  # fmt: skip


def strings(value: Any) -> list[str]:
    """Every string inside ``value`` (mappings' keys included), walked through."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [*strings(k), *strings(v)]]
    if isinstance(value, list | tuple | set | frozenset):
        return [s for item in value for s in strings(item)]
    return []


async def test_nothing_told_carries_a_secret_or_card_data(
    connect, simulator, clock, caplog: pytest.LogCaptureFixture
):
    """Payments (paid, declined, refused, throttled, notified) with every layer listening."""
    # The first poll is throttled (429 with Retry-After): a host pause, logged at WARNING.
    simulator.faults = Faults(throttle=Fault(script=[True], on={"result", "status"}))
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    events: list[bga.Event] = []
    caplog.set_level(logging.DEBUG)  # every logger, the simulator's too
    async with connect(
        on_event=events.append, tracer_provider=tracer_provider, meter_provider=meter_provider,
        webhook_key=simulator.public_key,
    ) as gw:  # fmt: skip
        app = Starlette(routes=[Route("/notify", bga.WebhookEndpoint(gw), methods=["POST"])])
        async with simulator.notifying(httpx.ASGITransport(app=app)):
            paid = await gw.payment(order(101, GOOD))
            declined = await gw.payment(order(102, DECLINED))
            with pytest.raises(bga.JobRejected):
                await gw.payment(order(103, GOOD, exp_year="2010"))  # expired: the task's 422
            await clock.sleep(120)  # the notifications are sent (on the virtual clock)
    assert (paid.status, declined.status) == ("successful", "failed")
    kinds = {type(e).__name__ for e in events}
    assert kinds == {"Submitted", "Polled", "Throttled", "Notified", "Ended"}
    assert any(s.name == "begateway payment" for s in spans.get_finished_spans())

    told: list[str] = []
    formatter = logging.Formatter()
    for record in caplog.records:
        told.append(formatter.format(record))
        told += strings(dict(vars(record)))
    for event in events:
        told += [repr(event), *strings(attrs.asdict(event))]
    for span in spans.get_finished_spans():
        told.append(span.to_json())
        told += strings(dict(span.attributes or {}))
        told += [s for e in span.events for s in [e.name, *strings(dict(e.attributes or {}))]]
    metrics = reader.get_metrics_data()
    assert metrics is not None
    told.append(metrics.to_json())
    everything = "\n".join(told)

    credentials = base64.b64encode(f"361:{SECRET}".encode()).decode()
    for secret in (SECRET, credentials, "Basic ", GOOD, DECLINED, HOLDER):
        assert secret not in everything
    values = set(told)
    for card_value in (CVV, MONTH, YEAR, f"{MONTH}/{YEAR}"):
        assert card_value not in values  # never a value of its own
    lowered = everything.lower()
    for field in CARD_FIELDS:
        assert f'"{field}"' not in lowered
        assert f"'{field}'" not in lowered
