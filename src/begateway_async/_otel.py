"""OpenTelemetry for a Gateway: a span per job, a child span per HTTP request, and metrics.

Only ``opentelemetry-api`` is used (the ``otel`` extra). Nothing is recorded
unless an SDK is configured: a tracer or meter provider given to the Gateway
(``tracer_provider=``, ``meter_provider=``), or set globally
(``opentelemetry.trace.set_tracer_provider``, ...); a global provider set
while the Gateway runs is seen within a second (asking the API for it on
every request cost more than the rest of the unused layers together).
Without the package, or with only the API's default providers, `Telemetry`
hands out nothing.

Spans: ``begateway {operation}`` (kind INTERNAL) from the submit to the
job's end, with ``begateway.operation``, ``begateway.request_id``,
``begateway.tracking_id``, ``begateway.outcome``, ``begateway.requests`` and
``server.address``; events ``throttled`` and ``notified``. Each HTTP request
is a child span named by its method (kind CLIENT), with the HTTP client
semantic conventions' attributes (``http.request.method``, ``url.full``,
``server.address``, ``server.port``, ``http.response.status_code``,
``error.type``). A 425 ("not yet") is not an error; another status of 400
or more is.

Metrics (meter ``begateway_async``): ``begateway.job.requests`` and
``begateway.job.duration`` (histograms, by operation and outcome),
``begateway.job.detection_lag`` (seconds from the poll before the last to
the end, an upper bound of how late the end was seen; jobs ended by a poll
after at least two), ``begateway.polls.in_flight`` (up-down counter),
``begateway.host.pauses`` (counter, by host and status) and
``http.client.request.duration`` (histogram, the semantic conventions').
"""

from __future__ import annotations

import time
from typing import Any, Final
from urllib.parse import urlsplit

from ._version import __version__

try:
    from opentelemetry import metrics, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # the `otel` extra is not installed
    metrics = trace = None  # type: ignore[assignment]

__all__ = ["AVAILABLE", "Instruments", "Telemetry", "http_attributes"]

#: Whether opentelemetry-api is importable.
AVAILABLE: Final = trace is not None
SCOPE: Final = "begateway_async"
#: A status that says "not yet", not "went wrong".
_NOT_YET: Final = 425
#: Seconds between two looks at the global providers while none records.
RECHECK: Final = 1.0


def _configured(provider: object) -> bool:
    """Whether ``provider`` records (an SDK's), not the API's proxy or no-op default."""
    if not AVAILABLE or provider is None:
        return False
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return False
    if isinstance(provider, metrics.NoOpMeterProvider):
        return False
    # The API's global default meter provider is a proxy of a private class.
    return not type(provider).__module__.startswith("opentelemetry.metrics")


class Instruments:
    """The metric instruments, made once per meter provider."""

    def __init__(self, meter: Any) -> None:
        self.requests = meter.create_histogram(
            "begateway.job.requests", unit="{request}", description="HTTP requests per job"
        )
        self.duration = meter.create_histogram(
            "begateway.job.duration", unit="s", description="From the submit to the job's end"
        )
        self.lag = meter.create_histogram(
            "begateway.job.detection_lag",
            unit="s",
            description="From the poll before the last to the end: how late the end was seen, "
            "at most",
        )
        self.in_flight = meter.create_up_down_counter(
            "begateway.polls.in_flight", unit="{request}", description="Polls under way"
        )
        self.pauses = meter.create_counter(
            "begateway.host.pauses", unit="{pause}", description="Pauses the gateway asked for"
        )
        self.http = meter.create_histogram(
            "http.client.request.duration", unit="s", description="Duration of HTTP requests"
        )


class Telemetry:
    """Hands out the tracer and the instruments while an SDK is configured.

    Args:
        tracer_provider: the provider of the job and request spans; the
            global one when None.
        meter_provider: the provider of the metrics; the global one when None.
    """

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._tracer: tuple[object, Any] | None = None
        self._instruments: tuple[object, Instruments | None] | None = None
        self._active = False
        self._checked_until = -1.0

    def active(self) -> bool:
        """Whether spans or metrics are recorded (looked up again at most once a second)."""
        now = time.monotonic()
        if now >= self._checked_until:
            self._active = self._find_tracer() is not None or self._find_instruments() is not None
            self._checked_until = now + RECHECK
        return self._active

    def tracer(self) -> Any:
        """The tracer, or None when no SDK records spans."""
        return self._find_tracer() if self.active() else None

    def instruments(self) -> Instruments | None:
        """The instruments, or None when no SDK records metrics."""
        return self._find_instruments() if self.active() else None

    def _find_tracer(self) -> Any:
        """The current provider's tracer, or None (decided once per provider)."""
        if not AVAILABLE:
            return None
        provider = self._tracer_provider or trace.get_tracer_provider()
        known = self._tracer
        if known is None or known[0] is not provider:
            tracer = provider.get_tracer(SCOPE, __version__) if _configured(provider) else None
            known = self._tracer = (provider, tracer)
        return known[1]

    def _find_instruments(self) -> Instruments | None:
        """The current provider's instruments, or None (decided once per provider)."""
        if not AVAILABLE:
            return None
        provider = self._meter_provider or metrics.get_meter_provider()
        known = self._instruments
        if known is None or known[0] is not provider:
            made = (
                Instruments(provider.get_meter(SCOPE, __version__))
                if _configured(provider)
                else None
            )
            known = self._instruments = (provider, made)
        return known[1]

    @staticmethod
    def job_span(tracer: Any, operation: str, attributes: dict[str, Any]) -> Any:
        """Start a job's span."""
        return tracer.start_span(
            f"begateway {operation}", kind=SpanKind.INTERNAL, attributes=attributes
        )

    @staticmethod
    def request_span(tracer: Any, parent: Any, method: str, url: str) -> Any:
        """Start an HTTP request's span, a child of ``parent`` (a job's span)."""
        context = trace.set_span_in_context(parent) if parent is not None else None
        return tracer.start_span(
            method, context=context, kind=SpanKind.CLIENT, attributes=http_attributes(method, url)
        )

    @staticmethod
    def end_request(span: Any, status_code: int | None, error: str | None) -> None:
        """End an HTTP request's span with its status, or with the error that ended it."""
        if status_code is not None:
            span.set_attribute("http.response.status_code", status_code)
            if status_code >= 400 and status_code != _NOT_YET:  # noqa: PLR2004
                error = error or str(status_code)
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    @staticmethod
    def end_job(span: Any, outcome: str, requests: int, error: str | None) -> None:
        """End a job's span with its outcome (an error's class name sets the error status)."""
        span.set_attribute("begateway.outcome", outcome)
        span.set_attribute("begateway.requests", requests)
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()


def http_attributes(method: str, url: str) -> dict[str, Any]:
    """The HTTP client span attributes of a request (no credentials: the URL carries none)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if "@" in parts.netloc:  # never a user or password in a span
        url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return {
        "http.request.method": method,
        "url.full": url,
        "server.address": parts.hostname or "",
        "server.port": port,
    }
