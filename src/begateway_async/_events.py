"""What a Gateway tells ``on_event``: frozen, typed events, one per thing that happened.

`Gateway(..., on_event=callback)` calls ``callback(event)`` synchronously, in
the task where it happened (the scheduler's, a submitting caller's, the one
delivering a notification), right after it happened. Keep it short: count,
record a metric, put it on a queue. An exception it raises is logged (logger
``begateway_async.jobs``) and dropped; it never changes what the job does.

No event carries a secret, a header, a request body or card data: only the
operation, the gateway's ids, the merchant's tracking id, URLs (the gateway's
task URLs carry no credentials), statuses and times.

- `Submitted`: one attempt of a submit got an answer or failed
  (``status_code`` None: no answer).
- `Polled`: one poll of a job's status or result URL.
- `Throttled`: the gateway asked to slow down (429, 503): a pause for the
  host (a poll), or before a re-sent submit.
- `Notified`: a verified notification was recorded (``request_id`` the
  pending job it belongs to, if any).
- `Ended`: a job ended, or a submit made none (``request_id`` None); a
  replayed job (`Gateway.replay`) reports nothing. ``outcome`` is the transaction's status
  (``"successful"``, ``"failed"`` when declined, ...), ``"ok"`` for other
  results, or the error's class name (``"JobFailed"``, ``"JobExpired"``, ...).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

__all__ = ["Ended", "Event", "Notified", "Polled", "Submitted", "Throttled"]


@attrs.frozen(kw_only=True)
class Event:
    """What every event has.

    Attributes:
        at: epoch seconds, by the Gateway's clock.
        operation: the operation's name (``"payment"``, ...); None when not known.
        tracking_id: the merchant's id of the transaction, if any.
        internal: a query the library made for itself (a tracking-id lookup, a
            follow-up's status query), not a job of yours.
    """

    at: float
    operation: str | None
    tracking_id: str | None
    internal: bool = False


@attrs.frozen(kw_only=True)
class Submitted(Event):
    """One attempt of a submit was answered, or failed.

    Attributes:
        idempotency_key: the ``RequestID`` it was sent with.
        attempt: 1 for the first attempt, 2 for the first re-send, ...
        status_code: the HTTP status of the answer; None when none came.
        elapsed: seconds the request took.
        error: what went wrong on the way (``"ReadTimeout"``), if anything.
    """

    idempotency_key: str | None
    attempt: int
    status_code: int | None
    elapsed: float
    error: str | None = None


@attrs.frozen(kw_only=True)
class Polled(Event):
    """One poll of a job was answered, or failed.

    Attributes:
        request_id: the job's task id.
        url: what was requested (the task's status or result URL).
        status_code: the HTTP status of the answer; None when none came.
        elapsed: seconds the request took.
        error: what went wrong on the way, if anything.
    """

    request_id: str
    url: str
    status_code: int | None
    elapsed: float
    error: str | None = None


@attrs.frozen(kw_only=True)
class Throttled(Event):
    """The gateway answered 429 or 503: polls of the host pause, or a submit waits to re-send.

    Attributes:
        host: the gateway's host (``host:port``).
        status_code: 429 or 503 (or another status the protocol reads as throttling).
        pause: seconds until the next request.
        request_id: the job whose poll was throttled; None for a submit.
    """

    host: str
    status_code: int | None
    pause: float
    request_id: str | None = None


@attrs.frozen(kw_only=True)
class Notified(Event):
    """A verified notification was recorded.

    Attributes:
        uid: the transaction's uid.
        status: its status (``"successful"``, ``"failed"``, ...).
        request_id: the task id of the pending job it belongs to (which it ends,
            unless a poll ended it first); None when it belongs to none.
    """

    uid: str | None
    status: str | None
    request_id: str | None


@attrs.frozen(kw_only=True)
class Ended(Event):
    """A job ended.

    Attributes:
        request_id: the job's task id; None for a submit that made no job
            (refused, not sent, undetermined: ``outcome`` says which).
        outcome: the transaction's status, ``"ok"`` for another result, or
            the error's class name.
        requests: HTTP requests this process made for the job (submits and polls).
        duration: seconds from the submit (the journal's creation time) to the end.
    """

    request_id: str | None
    outcome: str
    requests: int
    duration: float


#: What ``on_event`` is: called with each event, synchronously.
EventHook = Callable[[Event], object]
