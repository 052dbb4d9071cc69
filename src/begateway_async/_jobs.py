"""`Job`: one task at the gateway, awaitable by any number of waiters; `AsCompleted`.

A job is a small record, not a task: the Gateway's scheduler polls it and
ends it. Awaiting it never drives it, and cancelling a waiter never cancels
it. A job knows no Gateway: it is given the gateway's base URL (for its
token), the time line its waits run on, and what to call when it ends.
"""

from __future__ import annotations

import collections
import enum
import json
from collections.abc import Callable, Generator, Iterable
from types import TracebackType
from typing import Any, Final, Generic, Self, TypeVar

import anyio

from ._clock import Timebase
from ._errors import InvalidRequest, JobAbandoned, JobTimeout, NotResumable

__all__ = ["AsCompleted", "Job", "JobState", "read_token"]

T = TypeVar("T")

TOKEN_VERSION: Final = 1
TOKEN_TYPE: Final = "begateway-async/job"  # noqa: S105 - a type tag, not a secret


def check_timeout(timeout: object) -> None:
    """Refuse a ``timeout`` that is not a number of seconds (or None).

    Raises:
        InvalidRequest: it is text, a bool, negative or not a number.
    """
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
        raise InvalidRequest(
            "timeout", f"must be seconds (a number, 0 or more) or None, not {timeout!r}"
        )


class JobState(enum.Enum):
    """Where a job is in its life."""

    PENDING = "pending"
    """Acknowledged; the scheduler is polling it."""
    DONE = "done"
    """Resolved with a result or an error."""
    ABANDONED = "abandoned"
    """No longer polled here; it may be resumed from its token."""


class Job(Generic[T]):
    """A submitted task; ``await job`` gives its result.

    Jobs are made by the `Gateway` (`Gateway.submit`, `Gateway.resume`, ...),
    not by hand.

    Attributes:
        gateway: the base URL of the gateway the task is at.
        request_id: the gateway's task id.
        status_url: where the task's state is served.
        response_url: where its result is served (24 hours, or once for errors).
        tracking_id: the merchant's id of the transaction, if the request had one.
        operation: the operation's name (``"payment"``, ``"refund"``, ...).
        created_at: epoch seconds when the task was submitted, by the Gateway's clock.
        idempotency_key: the ``RequestID`` header the submit was sent with.
        tag: the label given to `Gateway.submit` (kept in the journal), if any.
        polls: how many polls were made for it by this process.
        last_error: the last passing failure seen while polling, if any.
    """

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_error",
        "_event",
        "_on_end",
        "_state",
        "_timebase",
        "_value",
        "created_at",
        "gateway",
        "idempotency_key",
        "last_error",
        "operation",
        "polls",
        "request_id",
        "response_url",
        "status_url",
        "tag",
        "tracking_id",
    )

    def __init__(
        self,
        *,
        gateway: str,
        timebase: Timebase,
        request_id: str,
        status_url: str,
        response_url: str,
        tracking_id: str | None,
        operation: str,
        created_at: float,
        idempotency_key: str | None,
        tag: str | None = None,
        on_end: Callable[[Job[Any]], object] | None = None,
    ) -> None:
        self.gateway = gateway
        self.request_id = request_id
        self.status_url = status_url
        self.response_url = response_url
        self.tracking_id = tracking_id
        self.operation = operation
        self.created_at = created_at
        self.idempotency_key = idempotency_key
        self.tag = tag
        self.polls = 0
        self.last_error: str | None = None
        self._timebase = timebase
        self._on_end = on_end
        self._state = JobState.PENDING
        self._value: Any = None
        self._error: BaseException | None = None
        self._event: anyio.Event | None = None
        self._callbacks: list[Callable[[Job[T]], object]] | None = None

    def __repr__(self) -> str:
        return (
            f"<Job {self.operation} request_id={self.request_id!r} "
            f"tracking_id={self.tracking_id!r} {self._state.value}>"
        )

    # --- state ---------------------------------------------------------------------------

    @property
    def state(self) -> JobState:
        """The job's state."""
        return self._state

    @property
    def polling(self) -> bool:
        """Whether the scheduler still polls this job."""
        return self._state is JobState.PENDING

    def done(self) -> bool:
        """Return True once the job has a result or an error (or was abandoned)."""
        return self._state is not JobState.PENDING

    def exception(self) -> BaseException | None:
        """Return the job's error, or None (also while it is pending)."""
        return self._error

    @property
    def value(self) -> T | None:
        """The job's result once it has one; None while pending or when it ended with an error."""
        return self._value  # type: ignore[no-any-return]

    def set_result(self, value: T) -> bool:
        """End the job with its result; the Gateway's parts call it, as with `asyncio.Future`.

        The job stops being polled, then its waiters wake.

        Returns:
            False when the job had already ended (nothing changes then).
        """
        return self._end(value, None)

    def set_exception(self, error: BaseException) -> bool:
        """End the job with ``error`` (`JobAbandoned` leaves it abandoned, not done).

        Returns:
            False when the job had already ended (nothing changes then).
        """
        return self._end(None, error)

    def _end(self, value: Any, error: BaseException | None) -> bool:
        if self._state is not JobState.PENDING:
            return False
        self._value = value
        self._error = error
        self._state = JobState.ABANDONED if isinstance(error, JobAbandoned) else JobState.DONE
        if self._on_end is not None:
            self._on_end(self)  # no longer pending anywhere before anyone is told
        if self._event is not None:
            self._event.set()
        callbacks, self._callbacks = self._callbacks, None
        for callback in callbacks or ():
            callback(self)
        return True

    def add_done_callback(self, callback: Callable[[Job[T]], object]) -> None:
        """Call ``callback(job)`` once the job ends (at once if it already has).

        The callback runs right when the result or error is known, in the
        task that learnt it (the scheduler's, or the one delivering a
        notification): keep it short and never let it raise.
        """
        if self.done():
            callback(self)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def remove_done_callback(self, callback: Callable[[Job[T]], object]) -> None:
        """Forget a callback given to `add_done_callback` (no error if it is not there)."""
        if self._callbacks and callback in self._callbacks:
            self._callbacks.remove(callback)

    # --- waiting -------------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, T]:
        return self.result().__await__()

    async def result(self, timeout: float | None = None) -> T:
        """Wait for the job and return its result.

        Any number of tasks may wait; cancelling one of them does not affect
        the job or the others.

        Args:
            timeout: seconds to wait at most (on the Gateway's clock); None waits
                as long as the job lives (the gateway keeps results 24 hours).

        Returns:
            The operation's result: a `Transaction` for transaction operations,
            a list of them for a tracking-id query, a `Balance` for a balance query.

        Raises:
            JobFailed: the task failed; carries the gateway's whole error body.
            JobExpired: the result is gone (24 h after creation).
            JobLost: the gateway does not know the task.
            JobAbandoned: the job was abandoned or its Gateway closed first.
            JobTimeout: ``timeout`` passed first; the job goes on.
            RequestRejected: the gateway refused our credentials while polling.
            MalformedResponse: the result could not be read; carries the body.
        """
        check_timeout(timeout)
        if self._state is JobState.PENDING:
            if timeout is None:
                if self._event is None:
                    self._event = anyio.Event()
                await self._event.wait()
            else:
                await self._wait_for(timeout)
        if self._error is not None:
            raise self._error
        result: T = self._value
        return result

    async def _wait_for(self, timeout: float) -> None:
        timebase = self._timebase
        woken = anyio.Event()

        def wake(_: object) -> None:
            woken.set()

        self.add_done_callback(wake)
        try:
            await timebase.wait(woken, timebase.monotonic() + max(0.0, timeout))
        finally:
            self.remove_done_callback(wake)
        if self._state is JobState.PENDING:
            raise JobTimeout(
                f"no result within {timeout} s; the job goes on",
                request_id=self.request_id,
                tracking_id=self.tracking_id,
            )

    # --- control -------------------------------------------------------------------------

    def abandon(self) -> None:
        """Stop polling this job here; its waiters get `JobAbandoned`.

        The task goes on at the gateway: `token` still resumes it.
        """
        self.set_exception(
            JobAbandoned(
                "the job was abandoned", request_id=self.request_id, tracking_id=self.tracking_id
            )
        )

    def token(self) -> str:
        """Return a versioned JSON token that `Gateway.resume` turns back into this job.

        It holds the task's URLs and ids, never a credential, and is safe to
        store.

        Raises:
            NotResumable: the gateway answered the submit with its result at
                once, so there is no task to resume.
        """
        if not self.response_url:
            raise NotResumable("this job was answered at submit; there is no task to resume")
        return json.dumps(
            {
                "v": TOKEN_VERSION,
                "type": TOKEN_TYPE,
                "gateway": self.gateway,
                "request_id": self.request_id,
                "status_url": self.status_url,
                "response_url": self.response_url,
                "tracking_id": self.tracking_id,
                "operation": self.operation,
                "created_at": self.created_at,
                "idempotency_key": self.idempotency_key,
            },
            separators=(",", ":"),
            sort_keys=True,
        )


def read_token(token: object) -> dict[str, Any]:
    """Check a job token's shape and return its fields.

    Raises:
        InvalidRequest: the token is not one of ours, or a field is missing or wrong.
    """
    if not isinstance(token, str | bytes):
        raise InvalidRequest("token", f"must be a string, not {type(token).__name__}")
    try:
        data = json.loads(token)
    except ValueError as exc:
        raise InvalidRequest("token", "is not JSON") from exc
    if not isinstance(data, dict) or data.get("type") != TOKEN_TYPE:
        raise InvalidRequest("token", "is not a begateway-async job token")
    if data.get("v") != TOKEN_VERSION:
        raise InvalidRequest("token.v", f"unsupported token version {data.get('v')!r}")
    for name in ("gateway", "request_id", "status_url", "response_url", "operation"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise InvalidRequest(f"token.{name}", "is missing")
    for name in ("tracking_id", "idempotency_key"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise InvalidRequest(f"token.{name}", "must be a string or null")
    created = data.get("created_at")
    if isinstance(created, bool) or not isinstance(created, int | float):
        raise InvalidRequest("token.created_at", "must be epoch seconds")
    return data


class AsCompleted(Generic[T]):
    """The given jobs as they finish, in finishing order (`Gateway.as_completed`).

    An async iterator: each job it yields is done, so ``await job`` returns
    its result or raises its error at once. Jobs already done come first.

    Nothing needs closing when a loop stops early: the jobs not yet yielded
    only hold a small callback that queues them when they end, and drop it
    then. Use it as an async context manager (or call `aclose`) to drop
    those callbacks at once.
    """

    __slots__ = ("__weakref__", "_jobs", "_left", "_ready", "_wake")

    def __init__(self, jobs: Iterable[Job[T]]) -> None:
        self._jobs = list(dict.fromkeys(jobs))
        self._left = len(self._jobs)
        self._ready: collections.deque[Job[T]] = collections.deque()
        self._wake: anyio.Event | None = None
        for job in self._jobs:
            job.add_done_callback(self._arrived)

    def __repr__(self) -> str:
        return f"<AsCompleted {self._left} of {len(self._jobs)} to come>"

    def _arrived(self, job: Job[T]) -> None:
        self._ready.append(job)
        self._wake_all()

    def _wake_all(self) -> None:
        woken, self._wake = self._wake, None
        if woken is not None:
            woken.set()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Job[T]:
        while not self._ready:
            if self._left <= 0:
                raise StopAsyncIteration
            if self._wake is None:  # one event for every task waiting here
                self._wake = anyio.Event()
            await self._wake.wait()
        self._left -= 1
        return self._ready.popleft()

    async def aclose(self) -> None:
        """Stop watching the jobs not yet yielded (they go on; nothing else changes)."""
        for job in self._jobs:
            job.remove_done_callback(self._arrived)
        self._left = 0
        self._ready.clear()
        self._wake_all()  # a task waiting in `__anext__` ends its loop

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
