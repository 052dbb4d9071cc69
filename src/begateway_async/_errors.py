"""The exceptions of begateway-async, shaped around what callers catch.

Every exception the library raises on purpose derives from `GatewayError`;
errors of httpx, anyio and cattrs are translated at the boundary (``raise ...
from exc``) and never escape raw. A declined payment is *not* an exception: it
is a `Transaction` whose ``status`` is ``"failed"``.

```
GatewayError
├── InvalidRequest (ValueError)  a request or argument failed validation; nothing was sent
├── GatewayStateError (RuntimeError)  the Gateway is not open: not entered yet, or closed
├── NotResumable (RuntimeError)  `Job.token` of a job answered at submit: no task to resume
├── UnsafeURL                    the gateway gave a URL on another origin; never requested
├── RequestRejected              the gateway refused the submit (or, later, our credentials)
├── SubmitIndeterminate          the submit's fate is unknown after bounded re-sends
├── TransportError               the gateway could not be reached; nothing was sent
├── MalformedResponse            an answer that is never the result: garbled, redirect, too big
├── WebhookRejected              a notification failed verification; it resolved nothing
│   ├── WebhookUnauthorized      missing or wrong HTTP Basic credentials
│   ├── WebhookSignatureInvalid  missing or wrong ``Content-Signature`` (a public key is set)
│   └── WebhookMalformed         the body is not a transaction notification
└── JobError                     a submitted job ended without a result
    ├── JobFailed                the task's error body (non-200: served only once)
    ├── JobExpired               404 ``unknown`` 24 h or more after the task was created
    ├── JobLost                  404 ``unknown`` earlier: never existed, or its body was taken
    ├── JobAbandoned             abandoned, or the Gateway closed without draining it
    └── JobTimeout (TimeoutError)  the caller stopped waiting; the job goes on
```
and ``FollowUpTimeout (GatewayError, TimeoutError)``: `Gateway.follow` passed its deadline;
``JournalError`` (`GatewayError`): the journal could not record a step.
Messages never contain the secret key, a card number or a CVV: they name
the job by ``request_id`` and ``tracking_id``, which is what a merchant
reconciles with.
"""

from __future__ import annotations

from typing import Any

from ._envelopes import error_code, error_details, error_message

__all__ = [
    "FollowUpTimeout",
    "GatewayError",
    "GatewayStateError",
    "InvalidRequest",
    "JobAbandoned",
    "JobError",
    "JobExpired",
    "JobFailed",
    "JobLost",
    "JobRejected",
    "JobTimeout",
    "MalformedResponse",
    "NotResumable",
    "Rejected",
    "RequestRejected",
    "SubmitIndeterminate",
    "SubmitRejected",
    "TransactionNotFound",
    "TransportError",
    "UnsafeURL",
    "WebhookMalformed",
    "WebhookRejected",
    "WebhookSignatureInvalid",
    "WebhookUnauthorized",
]


class GatewayError(Exception):
    """Base class of every error raised by begateway-async."""


class InvalidRequest(GatewayError, ValueError):  # noqa: N818 - names what happened, like httpx
    """A request (or an argument) failed validation before anything was sent.

    Attributes:
        field: dotted name of the offending field, e.g. ``"CreditCard.number"``.
        reason: what is wrong with it.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class GatewayStateError(GatewayError, RuntimeError):
    """The Gateway cannot do this in its state: it is not open (yet, or any more), or open already.

    A Gateway opens once, like `httpx.AsyncClient`: ``async with`` starts its
    connection pool and scheduler, leaving it closes them for good. Use it
    inside the block; make a new Gateway to start again. Nothing was sent.

    Attributes:
        state: ``"new"`` (never opened), ``"open"`` or ``"closed"``.
    """

    def __init__(self, message: str, *, state: str) -> None:
        super().__init__(message)
        self.state = state


class NotResumable(GatewayError, RuntimeError):  # noqa: N818
    """`Job.token` of a job the gateway answered at submit: there is no task to resume.

    Its result is already known: ``await job`` gives it.
    """


class UnsafeURL(GatewayError):  # noqa: N818
    """The gateway answered with a status or result URL outside its own origin.

    Such a URL is never requested: following it could leak credentials or
    be used for request forgery. The task may exist at the gateway; reconcile
    it by ``tracking_id``.
    """

    def __init__(
        self, url: str, *, expected_origin: str, request_id: str | None, tracking_id: str | None
    ) -> None:
        super().__init__(
            f"refusing {url!r}: not on the gateway origin {expected_origin!r} "
            f"(request_id={request_id!r}, tracking_id={tracking_id!r})"
        )
        self.url = url
        self.expected_origin = expected_origin
        self.request_id = request_id
        self.tracking_id = tracking_id


class _BodyError(GatewayError):
    """An error that carries a gateway answer: status code and whole body."""

    def __init__(self, summary: str, *, status_code: int, body: Any) -> None:
        self.status_code = status_code
        self.body = body
        self.message = error_message(body)
        self.errors = error_details(body)
        self.code = error_code(body)
        detail = f": {self.message}" if self.message else ""
        super().__init__(f"{summary} (HTTP {status_code}){detail}")


class Rejected(GatewayError):  # noqa: N818
    """The gateway refused the request itself, and created or charged nothing: fix it, send anew.

    The base of `SubmitRejected` (refused before any task existed: the
    credentials, a duplicate, a body it could not take) and `JobRejected`
    (refused inside the task: in the async mode the gateway acknowledges
    first and validates after, so an expired card or a missing field comes
    back as the task's one-shot HTTP 422). ``except bga.Rejected`` tells
    "the gateway refused what we sent" from "processing failed" (`JobFailed`
    that is not a `JobRejected`) without reading status codes; ``errors``
    names the fields.
    """

    status_code: int
    errors: object


class RequestRejected(_BodyError):  # noqa: N818
    """The gateway refused a request (validation, duplicate, credentials, ...).

    `Gateway.submit` raises its subclass `SubmitRejected` (no task was
    created). A job ends with a plain `RequestRejected` when a poll is
    refused for our credentials (HTTP 401/403): the task may still exist,
    and be charged, and can be resumed with the right credentials; so it is
    not a `Rejected`.

    Attributes:
        status_code: the HTTP status of the answer.
        body: the whole decoded answer (a dict, or the text when it was not JSON).
        message: the gateway's message from whichever envelope it used.
        errors: the per-field ``errors`` object, when there was one.
        code: the API v3 ``code`` (e.g. ``"E.1025"``), when there was one.
    """

    def __init__(
        self, *, status_code: int, body: Any, tracking_id: str | None = None, url: str = ""
    ) -> None:
        super().__init__("the gateway refused the request", status_code=status_code, body=body)
        self.tracking_id = tracking_id
        if status_code == 404 and url:  # noqa: PLR2004 - most often a wrong base URL
            self.args = (f"{self.args[0]}; nothing at {url}: is the gateway's base URL right?",)


class SubmitRejected(RequestRejected, Rejected):
    """The gateway refused a submit: no task was created, nothing was charged.

    A duplicate (E.1018: the same operation, amount and card within 30 s) is
    refused too: nothing new was made, but the earlier request stands.
    """


class SubmitIndeterminate(GatewayError):  # noqa: N818
    """The submit may or may not have created a task, and re-sending did not tell.

    The POST timed out, the connection dropped, or the gateway answered a 5xx
    without a JSON error, on every one of the bounded attempts made with the
    same ``RequestID`` header. Re-send with ``idempotency_key`` set to
    `idempotency_key` within 24 hours (the gateway keeps keys that long), or
    look the transaction up by `tracking_id`.
    """

    def __init__(
        self, *, tracking_id: str | None, idempotency_key: str, attempts: int, last: str
    ) -> None:
        super().__init__(
            f"the submit's outcome is unknown after {attempts} attempt(s) "
            f"(tracking_id={tracking_id!r}, RequestID={idempotency_key!r}): {last}"
        )
        self.tracking_id = tracking_id
        self.idempotency_key = idempotency_key
        self.attempts = attempts


class TransportError(GatewayError):
    """The gateway could not be reached (connection refused, DNS, connect or pool timeout).

    Raised by `Gateway.submit` only when no attempt left this machine, so no
    task can exist. Failures after a request was sent are retried (polls) or
    end as `SubmitIndeterminate` (submits).
    """


class MalformedResponse(GatewayError):  # noqa: N818
    """An answer that can never be the operation's result.

    A 200 that is not the result, a redirect (never followed), JSON nested
    too deeply, an answer over `Limits.max_answer_bytes` (as sent or
    inflated). Nothing is lost: `body` holds the whole decoded answer, when
    there is one.

    Attributes:
        reason: what is wrong with it.
        body: the whole decoded answer.
        request_id: the job's task id, when there is one.
    """

    def __init__(self, reason: str, *, body: Any, request_id: str | None = None) -> None:
        super().__init__(f"cannot read the gateway's answer (request_id={request_id!r}): {reason}")
        self.reason = reason
        self.body = body
        self.request_id = request_id


class WebhookRejected(GatewayError):  # noqa: N818
    """A notification failed verification: nothing was resolved or recorded.

    The webhook endpoint answers it with a 4xx, so the gateway tries again
    later (a notification that was only garbled in transit arrives whole).
    The message never repeats the credentials or the body.
    """


class WebhookUnauthorized(WebhookRejected):
    """The ``Authorization`` header is missing or does not carry the shop id and secret key."""


class WebhookSignatureInvalid(WebhookRejected):
    """The ``Content-Signature`` header is missing, undecodable, or does not verify.

    Only raised when the shop's public key is configured: the signature is
    then required, over the exact raw body.
    """


class WebhookMalformed(WebhookRejected):
    """The body is authentic but not a transaction notification (no JSON, no status, ...).

    Attributes:
        body: the decoded body (or the raw text when it is not JSON).
    """

    def __init__(self, reason: str, *, body: Any) -> None:
        super().__init__(f"the notification is not a transaction: {reason}")
        self.body = body


class JobError(GatewayError):
    """A submitted job ended without a result.

    Attributes:
        request_id: the gateway's task id.
        tracking_id: the merchant's id of the transaction, the key to reconcile with.
    """

    def __init__(self, message: str, *, request_id: str, tracking_id: str | None) -> None:
        # Not super(): in JobFailed the next class of the MRO is _BodyError.
        GatewayError.__init__(
            self, f"{message} (request_id={request_id!r}, tracking_id={tracking_id!r})"
        )
        self.request_id = request_id
        self.tracking_id = tracking_id


class JobFailed(JobError, _BodyError):  # noqa: N818
    """The task failed and the gateway served its error body (usually only once).

    Every waiter of the job receives the same exception with the whole body.

    Attributes:
        status_code: the HTTP status of the error answer (422, 500, ...).
        body: the whole decoded error body.
        message: the gateway's message, from whichever envelope it used.
        errors: the per-field ``errors`` object, when there was one.
        code: the API v3 ``code``, when there was one.
    """

    def __init__(
        self, *, status_code: int, body: Any, request_id: str, tracking_id: str | None
    ) -> None:
        _BodyError.__init__(self, "the task failed", status_code=status_code, body=body)
        summary = self.args[0]
        JobError.__init__(self, summary, request_id=request_id, tracking_id=tracking_id)


class JobRejected(JobFailed, Rejected):
    """The task's error refuses the request's content (HTTP 422, or a 4xx with per-field errors).

    In the async mode this is how validation fails: an expired card, an
    amount that is not an integer, a missing field; a duplicate (E.1018) too,
    whose earlier request stands. No transaction was made by this one;
    ``errors`` names the fields (e.g. ``{"credit_card": {"exp_year": [...]}}``).
    It is a `JobFailed` too, so code that catches that goes on working.
    """


class TransactionNotFound(JobFailed):
    """A status query's task says the gateway has no transaction with that uid (HTTP 404).

    ``gw.transaction(uid)`` raises it for a uid the gateway does not know
    (``"Record not found"``); a tracking id nobody used is an empty list instead.
    """


def job_failure(
    *, status_code: int, body: Any, request_id: str, tracking_id: str | None, operation: str = ""
) -> JobFailed:
    """The error for a task's one-shot error body.

    `JobRejected` when it refuses the content, `TransactionNotFound` for a
    status query answered 404, else `JobFailed`.
    """
    kind = JobFailed
    if status_code == 404 and operation == "status_query":  # noqa: PLR2004
        kind = TransactionNotFound
    elif status_code == 422 or (400 <= status_code < 500 and error_details(body)):  # noqa: PLR2004
        kind = JobRejected
    return kind(status_code=status_code, body=body, request_id=request_id, tracking_id=tracking_id)


class JobExpired(JobError):  # noqa: N818
    """The result is gone: the gateway keeps results 24 hours from task creation."""


class JobLost(JobError):  # noqa: N818
    """The gateway does not know the task although 24 hours have not passed.

    Either the task never existed under this id, or its one-shot error body
    was taken by someone else (another process polling the same job). Look the
    transaction up by `tracking_id`.

    Attributes:
        after_lost_reply: True when an earlier poll of this job was sent but its
            reply was lost in transit, so that poll may have been the one that
            consumed a one-shot error body.
        transactions: after a lost reply, what the Gateway's tracking-id query
            found of the operation's type (empty: the task made no transaction,
            so it failed at the gateway and its error body is gone); None when
            no lookup was made or it failed.
    """

    def __init__(
        self,
        message: str,
        *,
        request_id: str,
        tracking_id: str | None,
        after_lost_reply: bool,
        transactions: tuple[Any, ...] | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id, tracking_id=tracking_id)
        self.after_lost_reply = after_lost_reply
        self.transactions = transactions


class JobAbandoned(JobError):  # noqa: N818
    """The job was abandoned, or its Gateway closed without draining it.

    The task goes on at the gateway; `Job.token` resumes it elsewhere.
    """


class JobTimeout(JobError, TimeoutError):  # noqa: N818
    """The caller stopped waiting. The job is not affected and can be awaited again."""


class FollowUpTimeout(GatewayError, TimeoutError):  # noqa: N818
    """`Gateway.follow` reached its deadline with the transaction still not final.

    The transaction goes on at the gateway (the customer may still pass 3-D
    Secure): follow it again, or look it up later by uid or tracking id.

    Attributes:
        transaction: the last state seen (``incomplete``, usually).
        uid: its uid; tracking_id: its tracking id.
    """

    def __init__(self, message: str, *, transaction: Any) -> None:
        self.transaction = transaction
        self.uid = getattr(transaction, "uid", None)
        self.tracking_id = getattr(transaction, "tracking_id", None)
        super().__init__(f"{message} (uid={self.uid!r}, tracking_id={self.tracking_id!r})")
