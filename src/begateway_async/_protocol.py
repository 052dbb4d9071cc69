"""What an answer of the gateway means, without any I/O.

Pure functions from (HTTP status, headers, body bytes, job facts) to a typed
outcome. The async layer only drives them; every row of the decision table
in the project's design is a unit test of this module.

Submit (``POST /async/...``):

=====================================================  ==========================
answer                                                 outcome
=====================================================  ==========================
2xx ``{"status": "processing", request_id, urls}``     `Ack`
2xx ``{"status": "completed", request_id, ...}``       `Ack` (fetch the result now)
2xx transaction / result body                          `Immediate` (answered in sync)
2xx error envelope, 4xx, 500 with a JSON error         `Rejected`
429, 503                                               `Resend` (throttled, same RequestID)
408, 502, 504, other 5xx, unreadable 2xx, no answer    `Resend` (indeterminate, same RequestID)
=====================================================  ==========================

Poll (``GET status_url`` or ``GET response_url``):

=====================================================  ==========================
answer                                                 outcome
=====================================================  ==========================
``{"status": "processing"}`` (any 2xx) or 425          `Processing`
``{"status": "completed", response_url}``              `Completed`
2xx transaction / result body                          `Done`
2xx error envelope                                     `Failed` (kept 24 h)
4xx/500 JSON error body                                `Failed` (served once)
``{"status": "unknown"}`` before created + 24 h        `Unknown` (lost)
``{"status": "unknown"}`` at or after created + 24 h   `Unknown` (expired)
401, 403                                               `Refused`
3xx (a redirect is never followed), JSON too deep      `Malformed`
429; 503 with ``Retry-After``                          `Throttled` (pause the host)
502, 503, 504, HTML, truncated JSON, no answer         `Transient`
=====================================================  ==========================

A v3 ``code`` of success (``S.``), pending (``P.``) or ``8010`` (async task
created) never makes an answer an error envelope; any other ``code``, or a
``message``, ``errors``, ``response`` or ``error_code`` without a result, does.

What to do after a poll's outcome is decided in `_steps`.
"""

from __future__ import annotations

import email.utils
import functools
import math
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import attrs

from ._config import RESULT_RETENTION, origin_of
from ._serde import TooDeep, decode_json

__all__ = [
    "Ack",
    "Completed",
    "Done",
    "Failed",
    "Immediate",
    "Malformed",
    "PollOutcome",
    "Processing",
    "Refused",
    "Rejected",
    "Resend",
    "SubmitOutcome",
    "Throttled",
    "Transient",
    "Unknown",
    "decide_poll",
    "decide_submit",
    "parse_retry_after",
    "resolve_url",
]

_TASK_STATUSES: Final = frozenset({"processing", "completed", "unknown"})
_ERROR_KEYS: Final = ("message", "errors", "response", "code", "error_code")
_RESULT_KEYS: Final = ("uid", "transaction", "transactions", "result")
#: v3 codes that say all is well (or still going): never an error.
_FINE_CODES: Final = ("S.", "P.")
_TASK_CREATED: Final = "8010"
_PROXY_ERRORS: Final = frozenset({502, 503, 504})


# --- outcomes -----------------------------------------------------------------------------


@attrs.frozen
class Ack:
    """The gateway created the task."""

    request_id: str
    status_url: str | None
    response_url: str | None
    completed: bool = False


@attrs.frozen
class Immediate:
    """The POST was answered with the result itself (a synchronous answer)."""

    body: Any


@attrs.frozen
class Rejected:
    """The gateway refused the submit; no task exists."""

    status_code: int
    body: Any


@attrs.frozen
class Resend:
    """Whether a task exists is unknown, or the gateway throttled: re-send, same RequestID."""

    reason: str
    retry_after: float | None = None
    throttled: bool = False


SubmitOutcome = Ack | Immediate | Rejected | Resend


@attrs.frozen
class Processing:
    """The task is still running."""

    retry_after: float | None = None


@attrs.frozen
class Completed:
    """``status_url`` says the task is done; fetch ``response_url`` now."""

    response_url: str | None


@attrs.frozen
class Done:
    """The result: the operation's standard answer, decoded."""

    body: Any


@attrs.frozen
class Failed:
    """The task's error body; for a non-200 status it is served only this once."""

    status_code: int
    body: Any


@attrs.frozen
class Unknown:
    """404 ``unknown``: gone after 24 hours (``expired``), or lost before."""

    expired: bool


@attrs.frozen
class Malformed:
    """An answer that can never become this job's result: a redirect, JSON nested too deep."""

    reason: str
    body: Any = None


@attrs.frozen
class Refused:
    """Our credentials were refused (401/403); the task may still exist."""

    status_code: int
    body: Any


@attrs.frozen
class Throttled:
    """429, or 503 with ``Retry-After``: pause every poll to the host."""

    retry_after: float | None


@attrs.frozen
class Transient:
    """A passing failure (proxy error, garbled body, no answer): retry with backoff.

    ``maybe_consumed`` is True when the request may have reached the gateway
    and its answer was lost or garbled, so it may have taken a one-shot error
    body. Only a request that never left (connect errors) is known not to.
    """

    reason: str
    retry_after: float | None = None
    maybe_consumed: bool = False


PollOutcome = (
    Processing | Completed | Done | Failed | Unknown | Refused | Malformed | Throttled | Transient
)


# --- helpers ------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Read a ``Retry-After`` header: delay-seconds or an HTTP date (against epoch ``now``).

    Returns:
        Seconds to wait (never negative), or None when absent or unreadable.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            if when.tzinfo is None:
                return None
            seconds = when.timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError, OSError):
            return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def resolve_url(url: object, base_url: str) -> str | None:
    """Return the absolute form of a URL the gateway gave, if it is on the gateway's origin.

    A path-only URL is taken relative to the gateway. Anything with another
    scheme, host or port, or with user info, gives None: it is never requested.
    """
    if not isinstance(url, str) or not url:
        return None
    if url.startswith(_root(base_url)):  # the gateway's own origin, written as its base URL is
        return url
    try:
        absolute = (
            urljoin(base_url + "/", url)
            if url.startswith("/") and not url.startswith("//")
            else url
        )
        if "@" in absolute.split("//", 1)[-1].split("/", 1)[0]:
            return None
        if origin_of(absolute) != _base_origin(base_url):
            return None
    except ValueError:  # not a URL at all (a bad port, a broken IPv6 host, ...)
        return None
    return absolute


#: The gateway's own origin, parsed once per base URL (not once per answer).
_base_origin = functools.lru_cache(maxsize=16)(origin_of)


@functools.lru_cache(maxsize=16)
def _root(base_url: str) -> str:
    """``scheme://host[:port]/`` of a base URL as written (it carries no user info)."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}/"


def _decode(body: bytes) -> tuple[bool, Any]:
    """``(True, data)`` for JSON; ``(False, text)`` for anything else (`TooDeep` passes through)."""
    try:
        return True, decode_json(body)
    except TooDeep:
        raise
    except ValueError:  # UnicodeDecodeError included
        return False, body.decode("utf-8", "replace")


def _is_task_envelope(data: Any) -> bool:
    if not isinstance(data, Mapping):
        return False
    status = data.get("status")
    return (
        isinstance(status, str)
        and status in _TASK_STATUSES
        and not any(k in data for k in _RESULT_KEYS)
    )


def _fine_code(code: object) -> bool:
    """Whether a v3 ``code`` says success or pending (or that the async task was created)."""
    return isinstance(code, str) and (code.startswith(_FINE_CODES) or code == _TASK_CREATED)


def _is_error_envelope(data: Any) -> bool:
    if not isinstance(data, Mapping) or any(k in data for k in _RESULT_KEYS):
        return False
    if _fine_code(data.get("code")) or data.get("status") == "successful":
        return False
    return any(k in data for k in _ERROR_KEYS)


# --- decisions ----------------------------------------------------------------------------


def decide_submit(  # noqa: PLR0911 - one return per row of the table
    status_code: int, headers: Mapping[str, str], body: bytes, *, now: float
) -> SubmitOutcome:
    """Decide what the answer to a ``POST /async/...`` means.

    Args:
        status_code: the HTTP status.
        headers: the answer's headers (case-insensitive mapping).
        body: the raw answer body.
        now: epoch seconds, to read an HTTP-date ``Retry-After``.
    """
    retry_after = parse_retry_after(headers.get("retry-after"), now)
    if status_code == 429 or status_code == 503:  # noqa: PLR1714, PLR2004
        return Resend(f"HTTP {status_code}", retry_after, throttled=True)
    try:
        is_json, data = _decode(body)
    except TooDeep as exc:
        is_json, data = False, str(exc)
    if 200 <= status_code < 300:  # noqa: PLR2004
        if not is_json or not isinstance(data, Mapping):
            # The gateway said yes but the answer is garbled: a task may
            # exist, and re-sending with the same RequestID returns it.
            return Resend(f"unreadable HTTP {status_code} answer")
        if _is_task_envelope(data):
            request_id = data.get("request_id")
            if data["status"] == "unknown" or not isinstance(request_id, str) or not request_id:
                return Rejected(status_code, data)
            return Ack(
                request_id=request_id,
                status_url=data.get("status_url"),
                response_url=data.get("response_url"),
                completed=data["status"] == "completed",
            )
        if _is_error_envelope(data):
            return Rejected(status_code, data)
        return Immediate(data)
    if status_code in _PROXY_ERRORS or status_code == 408:  # noqa: PLR2004
        return Resend(f"HTTP {status_code}", retry_after)
    if status_code >= 500 and not (is_json and _is_error_envelope(data)):  # noqa: PLR2004
        return Resend(f"HTTP {status_code} without a JSON error", retry_after)
    return Rejected(status_code, data)


def decide_poll(  # noqa: C901, PLR0911 - one return per row of the table
    status_code: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    created_at: float,
) -> PollOutcome:
    """Decide what the answer to a poll of ``status_url`` or ``response_url`` means.

    Args:
        status_code: the HTTP status.
        headers: the answer's headers (case-insensitive mapping).
        body: the raw answer body.
        now: epoch seconds now, by the client's clock.
        created_at: epoch seconds when the task was submitted; the gateway
            keeps results 24 hours from then.
    """
    retry_after = parse_retry_after(headers.get("retry-after"), now)
    if status_code == 429 or (status_code == 503 and retry_after is not None):  # noqa: PLR2004
        return Throttled(retry_after)
    if status_code == 425:  # noqa: PLR2004
        return Processing(retry_after)
    if 300 <= status_code < 400:  # noqa: PLR2004
        return Malformed(
            f"HTTP {status_code}: a redirect, never followed (it would carry the credentials)"
        )
    try:
        is_json, data = _decode(body)
    except TooDeep as exc:
        return Malformed(str(exc))
    if is_json and _is_task_envelope(data):
        status = data["status"]
        if status == "processing":
            return Processing(retry_after)
        if status == "completed":
            return Completed(data.get("response_url"))
        return Unknown(expired=now >= created_at + RESULT_RETENTION)
    if status_code in (401, 403):
        return Refused(status_code, data)
    if not is_json or not isinstance(data, Mapping):
        # A garbled answer may have been a one-shot error body: say so.
        return Transient(f"unreadable HTTP {status_code} answer", retry_after, maybe_consumed=True)
    if 200 <= status_code < 300:  # noqa: PLR2004
        return Failed(status_code, data) if _is_error_envelope(data) else Done(data)
    if status_code in _PROXY_ERRORS or not _is_error_envelope(data):
        return Transient(f"HTTP {status_code}", retry_after, maybe_consumed=True)
    return Failed(status_code, data)
