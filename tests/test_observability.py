"""What a Gateway tells: log records, `on_event` events, OpenTelemetry spans and metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import anyio
import attrs
import httpx
import pytest
import respx
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import begateway_async as bga
from begateway_async import _otel
from fakes import BASE, SECRET, SHOP_ID, ack, notification, payment, processing, transaction

pytestmark = pytest.mark.anyio

PAYMENTS = "/async/transactions/payments"
RESULT = f"{BASE}/async/result/r1"


@attrs.define
class Telemetry:
    """In-memory OpenTelemetry: the finished spans and the metrics, and the providers."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def options(self) -> dict[str, Any]:
        """The Gateway's arguments for these providers."""
        return {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider}

    def finished(self) -> tuple[ReadableSpan, ...]:
        """The spans ended so far."""
        return tuple(self.spans.get_finished_spans())

    def points(self, name: str) -> list[Any]:
        """The data points of the metric ``name``."""
        data = self.reader.get_metrics_data()
        if data is None:  # nothing was recorded
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Telemetry(exporter, reader, tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def job_span(otel: Telemetry) -> ReadableSpan:
    (span,) = [s for s in otel.finished() if s.kind is SpanKind.INTERNAL]
    return span


def children(otel: Telemetry, parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [
        s for s in otel.finished()
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]  # fmt: skip


async def test_a_payment_is_one_job_span_with_a_client_span_per_request(
    open_gateway, router: respx.MockRouter, otel: Telemetry
):
    """Submit, a poll still processing, the result: one INTERNAL span, three CLIENT children."""
    router.post(PAYMENTS).respond(200, json=ack())
    router.get(RESULT).mock(
        side_effect=[
            httpx.Response(425, json=processing()),
            httpx.Response(200, json=transaction()),
        ]
    )
    async with open_gateway(**otel.options()) as gw:
        tx = await gw.payment(payment())
    assert tx.status == "successful"
    span = job_span(otel)
    assert span.name == "begateway payment"
    attributes = dict(span.attributes or {})
    assert attributes == {
        "begateway.operation": "payment",
        "begateway.tracking_id": "order-42",
        "begateway.request_id": "r1",
        "begateway.outcome": "successful",
        "begateway.requests": 3,
    }
    assert span.status.status_code is StatusCode.UNSET
    requests = sorted(children(otel, span), key=lambda s: s.start_time or 0)
    assert [(s.name, s.kind) for s in requests] == [
        ("POST", SpanKind.CLIENT), ("GET", SpanKind.CLIENT), ("GET", SpanKind.CLIENT),
    ]  # fmt: skip
    post, early, result = (dict(s.attributes or {}) for s in requests)
    assert post == {
        "http.request.method": "POST",
        "url.full": f"{BASE}{PAYMENTS}",
        "server.address": "gw.test",
        "server.port": 443,
        "http.response.status_code": 200,
    }
    assert early["http.response.status_code"] == 425  # "not yet" is no error
    assert requests[1].status.status_code is StatusCode.UNSET
    assert result["url.full"] == RESULT
    (count,) = otel.points("begateway.job.requests")
    assert (count.count, count.sum) == (1, 3)
    assert dict(count.attributes) == {
        "begateway.operation": "payment",
        "begateway.outcome": "successful",
    }
    (lag,) = otel.points("begateway.job.detection_lag")
    assert lag.count == 1
    assert lag.sum > 0  # from the poll before the last to the end, on the virtual clock
    durations = {
        (p.attributes["http.request.method"], p.attributes["http.response.status_code"]): p.count
        for p in otel.points("http.client.request.duration")
    }
    assert durations == {("POST", 200): 1, ("GET", 425): 1, ("GET", 200): 1}


async def test_a_one_shot_failure_ends_its_span_as_an_error(
    open_gateway, router: respx.MockRouter, otel: Telemetry
):
    """The task's 422: the job span's status is ERROR, its outcome the error's class."""
    router.post(PAYMENTS).respond(200, json=ack())
    router.get(RESULT).respond(422, json={"message": "expired", "errors": {"credit_card": ["x"]}})
    async with open_gateway(**otel.options()) as gw:
        with pytest.raises(bga.JobRejected):
            await gw.payment(payment())
    span = job_span(otel)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["begateway.outcome"] == "JobRejected"
    assert span.attributes["error.type"] == "JobRejected"
    get = [s for s in children(otel, span) if s.name == "GET"]
    assert [(s.attributes or {}).get("error.type") for s in get] == ["422"]
    (duration,) = otel.points("begateway.job.duration")
    assert dict(duration.attributes)["begateway.outcome"] == "JobRejected"


async def test_a_throttled_host_is_a_warning_an_event_a_span_event_and_a_metric(
    open_gateway, router: respx.MockRouter, otel: Telemetry, caplog: pytest.LogCaptureFixture
):
    """A 429 with Retry-After on a poll: each layer says which host paused, and for how long."""
    router.post(PAYMENTS).respond(200, json=ack())
    router.get(RESULT).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "slow down"}),
            httpx.Response(200, json=transaction()),
        ]
    )
    events: list[bga.Event] = []
    with caplog.at_level(logging.WARNING, logger="begateway_async.jobs"):
        async with open_gateway(on_event=events.append, **otel.options()) as gw:
            await gw.payment(payment())
    (throttled,) = [e for e in events if isinstance(e, bga.Throttled)]
    assert (throttled.host, throttled.status_code, throttled.request_id) == ("gw.test", 429, "r1")
    assert throttled.pause >= 7
    (record,) = [r for r in caplog.records if "throttled" in r.getMessage()]
    assert record.name == "begateway_async.jobs"
    assert record.levelno == logging.WARNING
    assert (record.host, record.status_code, record.pause) == ("gw.test", 429, throttled.pause)  # type: ignore[attr-defined]
    (paused,) = [e for e in job_span(otel).events if e.name == "throttled"]
    assert dict(paused.attributes or {})["http.response.status_code"] == 429
    (pauses,) = otel.points("begateway.host.pauses")
    assert pauses.value == 1
    assert dict(pauses.attributes) == {
        "server.address": "gw.test",
        "http.response.status_code": 429,
    }


async def test_a_notified_job_says_so_in_its_event_its_span_and_its_end(
    open_gateway, router: respx.MockRouter, otel: Telemetry, clock
):
    """A notification ends the job: a `Notified` event naming it, a span event, then `Ended`."""
    router.post(PAYMENTS).respond(200, json=ack())
    router.get(RESULT).respond(200, json=processing())
    events: list[bga.Event] = []
    async with open_gateway(on_event=events.append, autojump=False, **otel.options()) as gw:
        job = await gw.submit(payment())
        notified = await gw.deliver(*notification())
        assert notified.resolved
        await job
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Submitted", "Notified", "Ended"]  # no poll was due yet
    submitted, note, ended = events
    assert isinstance(submitted, bga.Submitted)
    assert (submitted.attempt, submitted.status_code, submitted.operation) == (1, 200, "payment")
    assert isinstance(note, bga.Notified)
    assert (note.uid, note.status, note.request_id, note.tracking_id) == (
        "u1", "successful", "r1", "order-42"
    )  # fmt: skip
    assert isinstance(ended, bga.Ended)
    assert (ended.outcome, ended.requests, ended.request_id) == ("successful", 1, "r1")
    assert ended.duration == 0.0  # nothing moved the virtual clock
    assert [e.name for e in job_span(otel).events] == ["notified"]


async def test_each_request_is_a_debug_line_and_each_job_an_info_line(
    open_gateway, router: respx.MockRouter, caplog: pytest.LogCaptureFixture
):
    """DEBUG: an `http` record per request; INFO: a `jobs` record per end; fields in extra."""
    router.post(PAYMENTS).respond(200, json=ack())
    router.get(RESULT).mock(
        side_effect=[
            httpx.Response(200, json=processing()),
            httpx.Response(200, json=transaction()),
        ]
    )
    with caplog.at_level(logging.DEBUG, logger="begateway_async"):
        async with open_gateway() as gw:
            await gw.payment(payment())
    http = [r for r in caplog.records if r.name == "begateway_async.http"]
    assert [(r.method, r.status_code) for r in http] == [("POST", 200), ("GET", 200), ("GET", 200)]  # type: ignore[attr-defined]
    assert http[1].url == RESULT  # type: ignore[attr-defined]
    assert http[1].request_id == "r1"  # type: ignore[attr-defined]
    assert http[0].getMessage().startswith(f"POST {BASE}{PAYMENTS} 200 ")
    (end,) = [
        r for r in caplog.records if r.name == "begateway_async.jobs" and r.levelno == logging.INFO
    ]
    fields = {
        k: getattr(end, k)
        for k in ("operation", "request_id", "tracking_id", "outcome", "requests")
    }
    assert fields == {
        "operation": "payment", "request_id": "r1", "tracking_id": "order-42",
        "outcome": "successful", "requests": 3,
    }  # fmt: skip
    took: float = end.duration  # type: ignore[attr-defined]
    assert took >= 0
    assert end.getMessage() == (
        f"payment r1 (tracking_id order-42) ended successful after 3 requests in {took:.2f} s"
    )


async def test_a_refused_submit_ends_as_an_event_without_a_task(
    open_gateway, router: respx.MockRouter, otel: Telemetry
):
    """A submit refused (HTTP 400 naming a field) has no job: `Ended` says so, the span too."""
    router.post(PAYMENTS).respond(400, json={"message": "bad", "errors": {"amount": ["bad"]}})
    events: list[bga.Event] = []
    async with open_gateway(on_event=events.append, **otel.options()) as gw:
        with pytest.raises(bga.SubmitRejected):
            await gw.payment(payment())
    ended = events[-1]
    assert isinstance(ended, bga.Ended)
    assert (ended.outcome, ended.request_id, ended.requests) == ("SubmitRejected", None, 1)
    assert job_span(otel).status.status_code is StatusCode.ERROR


async def test_a_hook_that_raises_changes_nothing_but_a_log_line(
    open_gateway, router: respx.MockRouter, caplog: pytest.LogCaptureFixture
):
    """`on_event` raising: the job ends as it would have, the error is logged."""
    router.post(PAYMENTS).respond(200, json=ack())
    router.get(RESULT).respond(200, json=transaction())

    def broken(event: bga.Event) -> None:
        raise RuntimeError("a bug in the hook")

    async with open_gateway(on_event=broken) as gw:
        tx = await gw.payment(payment())
    assert tx.status == "successful"
    assert any("on_event raised" in r.getMessage() for r in caplog.records)


async def test_nothing_is_recorded_without_an_sdk_or_without_the_package(
    open_gateway, router: respx.MockRouter, otel: Telemetry, monkeypatch: pytest.MonkeyPatch
):
    """The API's default providers record nothing; without opentelemetry, jobs run as ever."""
    assert _otel.Telemetry().tracer() is None  # the global providers: the API's defaults
    assert _otel.Telemetry().instruments() is None
    monkeypatch.setattr(_otel, "AVAILABLE", False)
    router.post(PAYMENTS).respond(200, json=ack())
    router.get(RESULT).respond(200, json=transaction())
    async with open_gateway(**otel.options()) as gw:  # an SDK, but no package to reach it
        assert (await gw.payment(payment())).status == "successful"
    assert otel.finished() == ()
    assert otel.points("begateway.job.requests") == []


class Raising(SimpleSpanProcessor):
    """A span processor that fails on every span's end (a broken exporter)."""

    def on_end(self, span: ReadableSpan) -> None:  # noqa: ARG002
        """Fail."""
        raise RuntimeError("the exporter is down")


async def test_a_failing_span_processor_loses_no_answer_and_hangs_nothing(
    open_gateway, router: respx.MockRouter, caplog: pytest.LogCaptureFixture
):
    """Every span's end raises: one POST, the result awaited, the Gateway closes, one log line."""
    posts = router.post(PAYMENTS).respond(200, json=ack())
    router.get(RESULT).respond(200, json=transaction())
    provider = TracerProvider()
    provider.add_span_processor(Raising(InMemorySpanExporter()))
    async with open_gateway(tracer_provider=provider) as gw:
        with anyio.fail_after(60):
            tx = await gw.payment(payment())
    assert tx.status == "successful"
    assert posts.call_count == 1  # the acknowledgement was kept, not re-sent as unknown
    assert not gw.is_open
    failures = [r for r in caplog.records if r.getMessage().startswith("observability failed")]
    assert [r.levelno for r in failures][:1] == [logging.ERROR]  # once; then at DEBUG
    assert all(r.levelno == logging.DEBUG for r in failures[1:])


async def test_polls_in_flight_come_back_to_zero(
    open_gateway, router: respx.MockRouter, otel: Telemetry
):
    """The up-down counter of polls under way is 0 once every job ended."""
    router.post(PAYMENTS).mock(side_effect=[httpx.Response(200, json=ack(f"r{n}")) for n in (1, 2)])
    for n in (1, 2):
        router.get(f"{BASE}/async/result/r{n}").mock(
            side_effect=[
                httpx.Response(425, json=processing()),
                httpx.Response(200, json=transaction(f"u{n}")),
            ]
        )
    async with open_gateway(**otel.options()) as gw:
        jobs = [await gw.submit(payment(100 + n)) for n in (1, 2)]
        for job in jobs:
            await job
    (in_flight,) = otel.points("begateway.polls.in_flight")
    assert in_flight.value == 0


async def test_a_resumed_entry_refused_again_ends_once(
    open_gateway, router: respx.MockRouter, clock
):
    """An unacknowledged entry re-sent by `resume_all` and refused: one `Ended`, not two."""
    router.post(PAYMENTS).respond(400, json={"message": "bad", "errors": {"amount": ["bad"]}})
    journal = bga.MemoryJournal()
    entry = bga.JournalEntry(
        key="k1", gateway=BASE, shop_id=str(SHOP_ID), operation="payment", method="POST",
        path=PAYMENTS, body=None, headers=(), tracking_id="order-42", tag=None,
        created_at=clock(),
    )  # fmt: skip
    await journal.intent(entry)
    events: list[bga.Event] = []
    async with open_gateway(journal=journal, on_event=events.append) as gw:
        (job,) = await gw.resume_all()
        with pytest.raises(bga.SubmitRejected):
            await job
    assert [type(e).__name__ for e in events] == ["Submitted", "Ended"]


async def test_a_replayed_job_reports_nothing(open_gateway, router: respx.MockRouter):
    """`replay` sends nothing and is no new end: no event, no log line."""
    router.post(PAYMENTS).respond(200, json=ack())
    router.get(RESULT).respond(200, json=transaction())
    events: list[bga.Event] = []
    journal = bga.MemoryJournal(keep_finished=True)
    async with open_gateway(journal=journal, on_event=events.append) as gw:
        await gw.payment(payment())
        told = len(events)
        (entry,) = await journal.entries(gw.base_url, gw.shop_id)
        replayed = gw.replay(entry)
        assert replayed is not None
        assert (await replayed).status == "successful"
    assert len(events) == told


async def test_the_library_s_own_queries_are_marked_internal(
    open_gateway, router: respx.MockRouter, otel: Telemetry
):
    """A follow-up's status query: its events say `internal`, and it is no job in the metrics."""
    router.post(PAYMENTS).respond(200, json=ack())
    router.get(RESULT).respond(200, json=transaction(status="incomplete"))
    router.get("/async/transactions/u1").respond(200, json=ack("r2"))
    router.get(f"{BASE}/async/result/r2").respond(200, json=transaction())
    events: list[bga.Event] = []
    async with open_gateway(on_event=events.append, **otel.options()) as gw:
        incomplete = await gw.payment(payment())
        final = await gw.follow(incomplete, within=600)
    assert final.status == "successful"
    ends = [(e.operation, e.internal) for e in events if isinstance(e, bga.Ended)]
    assert ends == [("payment", False), ("status_query", True)]
    (jobs,) = otel.points("begateway.job.requests")
    assert jobs.count == 1  # the payment only


async def test_on_event_must_be_callable():
    """A hook that cannot be called is refused at construction, naming `on_event`."""
    with pytest.raises(bga.InvalidRequest, match="on_event"):
        bga.Gateway(BASE, SHOP_ID, SECRET, on_event="print")  # type: ignore[arg-type]
