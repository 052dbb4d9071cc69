"""`Observer`: what a Gateway's parts report, told to the logs, ``on_event`` and OpenTelemetry.

The parts call it at a few points: each HTTP request (`HttpCore`), a job's
end (its ``on_end``), a submit that made no job, a library's own query, a
host paused, a submit re-sent after a throttle, a notification recorded. It
keeps per job what the three layers need (requests made, the last polls'
times, the span) only while one of them listens, by the job's journal key
(its ``RequestID``): a submit's requests and its job's polls are one trace.
With no handler enabled for the library's loggers, no hook and no SDK, each
report is one check.

Loggers (the README's "Observability"):

- ``begateway_async.http``: DEBUG, one line per request (method, URL,
  status, elapsed, request id);
- ``begateway_async.jobs``: INFO, one line per job end (operation, request
  id, tracking id, outcome, requests, duration; the library's own lookups at
  DEBUG); WARNING, a host paused; and what went wrong with a job;
- ``begateway_async.webhooks``: notifications (DEBUG) and their refusals;
- ``begateway_async.journal``: the journal and the workers sharing it.

Each record carries its fields in ``extra`` (``method``, ``url``,
``status_code``, ``elapsed``, ``operation``, ``request_id``,
``tracking_id``, ``outcome``, ``requests``, ``duration``, ``host``,
``pause``, ``uid``, ``status``), for JSON formatters. Never a header, a body
or card data (a late one-shot error body is logged by its message and the
names of its error fields).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

from . import _events as e
from ._clock import Timebase
from ._jobs import Job
from ._models import Transaction
from ._otel import Telemetry
from ._records import JournalEntry

__all__ = ["HTTP_LOG", "JOBS_LOG", "WEBHOOKS_LOG", "Observer"]

HTTP_LOG = logging.getLogger("begateway_async.http")
JOBS_LOG = logging.getLogger("begateway_async.jobs")
WEBHOOKS_LOG = logging.getLogger("begateway_async.webhooks")
_DEBUG, _INFO = logging.DEBUG, logging.INFO


class _Trace:
    """What is known of one job (or submit) while someone listens."""

    __slots__ = (
        "internal", "last_poll", "notified", "previous_poll", "requests", "span", "status",
    )  # fmt: skip

    def __init__(self, span: Any, *, internal: bool = False) -> None:
        self.span = span
        self.requests = 0
        self.internal = internal
        self.notified = False
        self.status: int | None = None  # of the last answer
        self.last_poll = self.previous_poll = -1.0


class _Request:
    """One HTTP request under way (what `Observer.sent` needs at its end)."""

    __slots__ = ("instruments", "method", "span", "started", "subject", "trace", "url")

    def __init__(self, method: str, url: str, subject: object, trace: _Trace | None) -> None:
        self.method = method
        self.url = url
        self.subject = subject
        self.trace = trace
        self.span: Any = None
        self.instruments: Any = None  # where it is counted: its end goes to the same
        self.started = time.perf_counter()


class Observer:
    """The one place a Gateway's parts report to; no report ever raises.

    Args:
        timebase: the Gateway's clock (events' ``at``, job durations).
        on_event: called with each `Event`, synchronously; None for none.
        telemetry: the OpenTelemetry providers.
    """

    def __init__(
        self,
        timebase: Timebase,
        on_event: e.EventHook | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._timebase = timebase
        self._hook = on_event
        self._telemetry = telemetry or Telemetry()
        self._traces: dict[str, _Trace] = {}  # by journal key, until the job or submit ends
        self._broken = False

    def listening(self) -> bool:
        """Whether any layer wants per-request reports (a handler, a hook or an SDK)."""
        return (
            self._hook is not None
            or JOBS_LOG.isEnabledFor(_INFO)
            or HTTP_LOG.isEnabledFor(_DEBUG)
            or self._telemetry.active()
        )

    def _failed(self) -> None:
        """A layer raised: say so once (then at DEBUG); the job goes on as if nothing was told."""
        level = _DEBUG if self._broken else logging.ERROR
        self._broken = True
        JOBS_LOG.log(level, "observability failed (a span processor, a log handler, ...); "
                     "the job goes on", exc_info=True)  # fmt: skip

    # --- requests ------------------------------------------------------------------------

    def sending(self, method: str, url: str, subject: object) -> _Request | None:
        """A request starts; ``subject`` is the submit's entry or the polled job (or None)."""
        try:
            return self._sending(method, url, subject) if self.listening() else None
        except Exception:  # noqa: BLE001 - telling never changes what a job does
            self._failed()
            return None

    def _sending(self, method: str, url: str, subject: object) -> _Request:
        trace: _Trace | None = None
        if isinstance(subject, JournalEntry):
            trace = self._traces.get(subject.key)
            if trace is None:
                trace = self._traces[subject.key] = self._new_trace(
                    subject.operation, subject.tracking_id, None
                )
        elif isinstance(subject, Job):
            trace = self._trace_of(subject)
            trace.previous_poll, trace.last_poll = trace.last_poll, self._timebase.monotonic()
        request = _Request(method, url, subject, trace)
        instruments = request.instruments = self._telemetry.instruments()
        if trace is not None:
            trace.requests += 1
            tracer = self._telemetry.tracer()
            if tracer is not None and trace.span is not None:  # a request's span: its job's child
                request.span = Telemetry.request_span(tracer, trace.span, method, url)
            if instruments is not None and isinstance(subject, Job):
                instruments.in_flight.add(1)
        return request

    def sent(
        self, request: _Request | None, status: int | None, error: BaseException | None
    ) -> None:
        """The request of `sending` was answered with ``status``, or ended with ``error``."""
        if request is None:
            return
        try:
            self._sent(request, status, error)
        except Exception:  # noqa: BLE001 - as in `sending`
            self._failed()

    def _sent(self, request: _Request, status: int | None, error: BaseException | None) -> None:
        elapsed = time.perf_counter() - request.started
        failure = type(error).__name__ if error is not None else None
        trace = request.trace
        if trace is not None:
            trace.status = status
        if request.span is not None:
            Telemetry.end_request(request.span, status, failure)
        instruments = request.instruments
        if instruments is not None:
            if trace is not None and isinstance(request.subject, Job):  # as `_sending` added it
                instruments.in_flight.add(-1)
            attributes: dict[str, Any] = {"http.request.method": request.method}
            if status is not None:
                attributes["http.response.status_code"] = status
            instruments.http.record(elapsed, attributes)
        subject = request.subject
        request_id = subject.request_id if isinstance(subject, Job) else None
        if HTTP_LOG.isEnabledFor(_DEBUG):
            HTTP_LOG.debug(
                "%s %s %s %.1f ms%s",
                request.method, request.url, status if status is not None else failure,
                elapsed * 1000, f" request_id={request_id}" if request_id else "",
                extra={"method": request.method, "url": request.url, "status_code": status,
                       "elapsed": elapsed, "request_id": request_id, "error": failure},
            )  # fmt: skip
        internal = trace is not None and trace.internal
        if isinstance(subject, Job):
            self._emit(
                e.Polled, subject.operation, subject.tracking_id, internal,
                request_id=subject.request_id, url=request.url, status_code=status,
                elapsed=elapsed, error=failure,
            )  # fmt: skip
        elif isinstance(subject, JournalEntry):
            self._emit(
                e.Submitted, subject.operation, subject.tracking_id, internal,
                idempotency_key=subject.key, attempt=trace.requests if trace else 1,
                status_code=status, elapsed=elapsed, error=failure,
            )  # fmt: skip

    # --- jobs ----------------------------------------------------------------------------

    def internal(self, entry: JournalEntry) -> None:
        """``entry`` is a query of the library's own: its end is DEBUG, not INFO, no job metric."""
        try:
            if self.listening():
                trace = self._traces[entry.key] = self._new_trace(
                    entry.operation, entry.tracking_id, None
                )
                trace.internal = True
        except Exception:  # noqa: BLE001 - as in `sending`
            self._failed()

    def unsent(self, entry: JournalEntry, error: BaseException) -> None:
        """A submit ended without a job (refused, not sent, undetermined, journal failed)."""
        try:
            trace = self._traces.pop(entry.key, None)
            if trace is not None or self.listening():
                name = type(error).__name__
                self._finish(
                    trace, entry.operation, entry.tracking_id, None, name, error=name,
                    duration=self._timebase.time() - entry.created_at,
                )  # fmt: skip
        except Exception:  # noqa: BLE001 - as in `sending`
            self._failed()

    def merged(self, entry: JournalEntry, job: Job[Any]) -> None:
        """``entry``'s answer named a task ``job`` already tracks: one job, one trace."""
        try:
            if _key(job) == entry.key:
                return  # the same trace: the job's, which goes on
            trace = self._traces.pop(entry.key, None)
            if trace is not None and trace.span is not None:
                Telemetry.end_job(trace.span, "merged", trace.requests, None)
        except Exception:  # noqa: BLE001 - as in `sending`
            self._failed()

    def ended(self, job: Job[Any]) -> None:
        """A job ended (its ``on_end``)."""
        try:
            trace = self._traces.pop(_key(job), None)
            if trace is None and not self.listening():
                return
            error = job.exception()
            value = job.value
            if error is not None:
                outcome = failure = type(error).__name__
            else:
                failure = None
                outcome = value.status if isinstance(value, Transaction) else "ok"
            self._finish(
                trace, job.operation, job.tracking_id, job.request_id, outcome, error=failure,
                duration=self._timebase.time() - job.created_at,
            )  # fmt: skip
        except Exception:  # noqa: BLE001 - as in `sending`
            self._failed()

    def _finish(
        self,
        trace: _Trace | None,
        operation: str,
        tracking_id: str | None,
        request_id: str | None,
        outcome: str,
        *,
        error: str | None,
        duration: float,
    ) -> None:
        requests = trace.requests if trace is not None else 0
        internal = trace is not None and trace.internal
        if trace is not None and trace.span is not None:
            if request_id is not None:
                trace.span.set_attribute("begateway.request_id", request_id)
            Telemetry.end_job(trace.span, outcome, requests, error)
        instruments = self._telemetry.instruments()
        if instruments is not None and not internal:
            attributes = {"begateway.operation": operation, "begateway.outcome": outcome}
            instruments.requests.record(requests, attributes)
            instruments.duration.record(duration, attributes)
            if (
                trace is not None and trace.previous_poll >= 0 and error is None
                and not trace.notified
            ):  # fmt: skip
                lag = self._timebase.monotonic() - trace.previous_poll
                instruments.lag.record(lag, {"begateway.operation": operation})
        level = _DEBUG if internal else _INFO
        if JOBS_LOG.isEnabledFor(level):
            JOBS_LOG.log(
                level, "%s %s%s ended %s after %d requests in %.2f s",
                operation, request_id or "(no task)",
                f" (tracking_id {tracking_id})" if tracking_id else "", outcome, requests,
                duration,
                extra={"operation": operation, "request_id": request_id,
                       "tracking_id": tracking_id, "outcome": outcome, "requests": requests,
                       "duration": duration},
            )  # fmt: skip
        self._emit(
            e.Ended, operation, tracking_id, internal, request_id=request_id, outcome=outcome,
            requests=requests, duration=duration,
        )  # fmt: skip

    # --- pauses and notifications --------------------------------------------------------

    def paused(self, job: Job[Any], url: str, pause: float) -> None:
        """Polls of ``url``'s host pause for ``pause`` seconds: the gateway throttled ``job``."""
        try:
            trace = self._traces.get(_key(job))
            self._throttled(
                url=url, status=trace.status if trace is not None else None, pause=pause,
                operation=job.operation, tracking_id=job.tracking_id, request_id=job.request_id,
                trace=trace,
            )  # fmt: skip
        except Exception:  # noqa: BLE001 - as in `sending`
            self._failed()

    def resending(self, entry: JournalEntry, url: str, status: int | None, pause: float) -> None:
        """A throttled submit (to ``url``) is sent again in ``pause`` seconds."""
        try:
            self._throttled(
                url=url, status=status, pause=pause, operation=entry.operation,
                tracking_id=entry.tracking_id, request_id=None,
                trace=self._traces.get(entry.key), submit=True,
            )  # fmt: skip
        except Exception:  # noqa: BLE001 - as in `sending`
            self._failed()

    def _throttled(
        self,
        *,
        url: str,
        status: int | None,
        pause: float,
        operation: str,
        tracking_id: str | None,
        request_id: str | None,
        trace: _Trace | None,
        submit: bool = False,
    ) -> None:
        host = urlsplit(url).netloc
        if not submit and JOBS_LOG.isEnabledFor(logging.WARNING):
            JOBS_LOG.warning(
                "the gateway throttled polls%s: %s paused for %.1f s",
                f" (HTTP {status})" if status is not None else "", host, pause,
                extra={"host": host, "status_code": status, "pause": pause,
                       "request_id": request_id, "operation": operation},
            )  # fmt: skip
        if trace is not None and trace.span is not None:
            trace.span.add_event("throttled", {"http.response.status_code": status or 0,
                                               "begateway.pause": pause})  # fmt: skip
        instruments = self._telemetry.instruments()
        if instruments is not None:
            instruments.pauses.add(1, {"server.address": host,
                                       "http.response.status_code": status or 0})  # fmt: skip
        self._emit(
            e.Throttled, operation, tracking_id, trace is not None and trace.internal,
            host=host, status_code=status, pause=pause, request_id=request_id,
        )  # fmt: skip

    def notified(self, tx: Transaction, job: Job[Any] | None) -> None:
        """A verified notification was recorded; ``job`` is the pending one it belongs to."""
        try:
            trace = self._traces.get(_key(job)) if job is not None else None
            if trace is not None:
                trace.notified = True
                if trace.span is not None:
                    trace.span.add_event("notified", {"begateway.status": tx.status or ""})
            request_id = job.request_id if job is not None else None
            if WEBHOOKS_LOG.isEnabledFor(_DEBUG):
                WEBHOOKS_LOG.debug(
                    "notification of %s: %s%s", tx.uid, tx.status,
                    f", for request_id={request_id}" if request_id else "",
                    extra={"uid": tx.uid, "status": tx.status, "tracking_id": tx.tracking_id,
                           "request_id": request_id},
                )  # fmt: skip
            self._emit(
                e.Notified, tx.type, tx.tracking_id, False,  # noqa: FBT003 - never internal
                uid=tx.uid, status=tx.status, request_id=request_id,
            )  # fmt: skip
        except Exception:  # noqa: BLE001 - as in `sending`
            self._failed()

    def late(self, job: Job[Any], status: int | None, body: object) -> None:
        """A poll's answer came for a job a notification ended (or is ending): dropped.

        An error answer (``status``) was its one-shot body: its message and
        the names of its error fields are logged (never the body: it may
        echo what was sent).
        """
        if status is None:
            JOBS_LOG.debug("request_id=%s: a result after a notification ended it", job.request_id)
            return
        message = body.get("message") if isinstance(body, dict) else None
        errors = body.get("errors") if isinstance(body, dict) else None
        fields = sorted(str(name) for name in errors) if isinstance(errors, dict) else []
        JOBS_LOG.warning(
            "request_id=%s: an error answer (HTTP %d) after a notification ended the job: %.200s"
            " (errors in %s)",
            job.request_id, status, message if isinstance(message, str) else "", fields or "none",
            extra={"request_id": job.request_id, "status_code": status},
        )  # fmt: skip

    # --- the parts of it -----------------------------------------------------------------

    def _trace_of(self, job: Job[Any]) -> _Trace:
        key = _key(job)
        trace = self._traces.get(key)
        if trace is None:  # picked up again, taken over: its submit was not seen here
            trace = self._traces[key] = self._new_trace(
                job.operation, job.tracking_id, job.request_id
            )
        return trace

    def _new_trace(self, operation: str, tracking_id: str | None, request_id: str | None) -> _Trace:
        tracer = self._telemetry.tracer()
        if tracer is None:
            return _Trace(None)
        attributes: dict[str, Any] = {"begateway.operation": operation}
        if tracking_id is not None:
            attributes["begateway.tracking_id"] = tracking_id
        if request_id is not None:
            attributes["begateway.request_id"] = request_id
        return _Trace(Telemetry.job_span(tracer, operation, attributes))

    def _emit(
        self,
        kind: type[e.Event],
        operation: str | None,
        tracking_id: str | None,
        internal: bool,
        **fields: Any,
    ) -> None:
        hook = self._hook
        if hook is None:
            return
        try:
            hook(kind(at=self._timebase.time(), operation=operation, tracking_id=tracking_id,
                      internal=internal, **fields))  # fmt: skip
        except Exception:  # noqa: BLE001 - the user's hook never changes what a job does
            JOBS_LOG.exception("on_event raised; the event is dropped, the job goes on")


def _key(job: Job[Any]) -> str:
    """The key of a job's trace: its journal key (``RequestID``), or its task id without one."""
    return job.idempotency_key or f"task:{job.request_id}"
