"""What the journal holds: a submit's entry, its outcome, a notification; and `JournalError`."""

from __future__ import annotations

import attrs

from ._errors import GatewayError

__all__ = ["JournalEntry", "JournalError", "JournalNotification", "JournalOutcome", "error_outcome"]


class JournalError(GatewayError):
    """The journal could not record an entry; the step that needed it was not taken."""


@attrs.frozen
class JournalOutcome:
    """How a submit ended, as recorded.

    Attributes:
        kind: ``"result"`` (a result body), ``"failed"`` (the one-shot error
            body), ``"rejected"`` (the submit was refused), ``"not_sent"``
            (nothing left this machine), or ``"error"`` (a typed error:
            lost, expired, unsafe URL; see ``error``).
        status_code: the answer's HTTP status, when there was an answer.
        body: the answer's body, whole, when there was one.
        error: the error's type name (``"JobLost"``, ...), when it ended in one.
        message: the error's message.
        finished_at: epoch seconds, by the Gateway's clock.
    """

    kind: str
    status_code: int | None = None
    body: bytes | None = attrs.field(default=None, repr=lambda b: f"<{len(b or b'')} bytes>")
    error: str | None = None
    message: str | None = None
    finished_at: float = 0.0


def error_outcome(error: BaseException) -> JournalOutcome:
    """The recorded end of a submit that ended in ``error`` (lost, expired, unsafe URL, ...)."""
    return JournalOutcome("error", error=type(error).__name__, message=str(error))


@attrs.frozen
class JournalEntry:
    """One submit, as the journal holds it.

    Attributes:
        key: the ``RequestID`` the submit is sent with (one entry per key).
        gateway: the gateway's base URL.
        shop_id: the shop the submit was made for.
        operation: the operation's name.
        method: the HTTP method of the submit.
        path: the URL path under the base URL (``/async/...``).
        body: the request body, sealed (AES-256-GCM, see `_sealing`: never card data in
            clear); erased once the gateway acknowledged it.
        headers: the request's own headers (``X-API-Version``), as pairs.
        tracking_id: the merchant's id of the transaction, if any.
        tag: the caller's label for the submit, if any.
        created_at: epoch seconds of the first send, by the Gateway's clock.
        request_id: the gateway's task id, once acknowledged.
        status_url: the task's status URL, once acknowledged.
        response_url: the task's result URL, once acknowledged.
        outcome: how it ended, once it did.
    """

    key: str
    gateway: str
    shop_id: str
    operation: str
    method: str
    path: str
    body: bytes | None = attrs.field(repr=False)
    headers: tuple[tuple[str, str], ...]
    tracking_id: str | None
    tag: str | None
    created_at: float
    request_id: str | None = None
    status_url: str | None = None
    response_url: str | None = None
    outcome: JournalOutcome | None = None

    @property
    def acknowledged(self) -> bool:
        """Whether the gateway acknowledged the submit (it has a task id)."""
        return self.request_id is not None

    @property
    def finished(self) -> bool:
        """Whether the outcome is recorded."""
        return self.outcome is not None


@attrs.frozen
class JournalNotification:
    """One verified notification, as the journal holds it.

    Attributes:
        gateway: the gateway's base URL; shop_id: the shop it was sent for.
        uid: the transaction's uid; tracking_id: its tracking id.
        status: the transaction's status in the notification.
        body: the notification's body, exactly as received.
        received_at: epoch seconds, by the Gateway's clock.
        key: the entry (``RequestID``) whose job it ended, if it ended one.
    """

    gateway: str
    shop_id: str
    uid: str
    tracking_id: str | None
    status: str
    body: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    received_at: float
    key: str | None = None
