"""The commands' logs (``--log-level``, ``--log-json``) and spans (``demo --otel console``)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["JsonLines", "configure_logs", "console_telemetry"]

#: What every LogRecord has; anything else on a record came in ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logs(level: str | None, json_lines: bool) -> None:
    """Send the library's log records to standard error, at ``level`` (WARNING by default).

    Nothing changes when neither option is given (Python's own last-resort
    handler prints warnings as before).
    """
    if level is None and not json_lines:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonLines()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logger = logging.getLogger("begateway_async")
    logger.addHandler(handler)
    logger.setLevel(level or "WARNING")
    logger.propagate = False  # one line per record, whatever the root logger does


@contextlib.contextmanager
def console_telemetry() -> Iterator[dict[str, Any]]:
    """OpenTelemetry providers that print every span and, at the end, the metrics, to stdout.

    Yields the Gateway's ``tracer_provider`` and ``meter_provider`` arguments.

    Raises:
        ModuleNotFoundError: the OpenTelemetry SDK is not installed (``opentelemetry``).
    """
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415 - an optional package
    from opentelemetry.sdk.metrics.export import (  # noqa: PLC0415
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        ConsoleSpanExporter,
    )

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    reader = PeriodicExportingMetricReader(
        ConsoleMetricExporter(), export_interval_millis=3_600_000
    )
    meter_provider = MeterProvider(metric_readers=[reader])
    try:
        yield {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    finally:
        tracer_provider.shutdown()  # the spans still queued are printed
        meter_provider.shutdown()  # and the metrics, once
