"""What an output line of the batch runner says: the answer without card data, or the error."""

from __future__ import annotations

from typing import Any, Final

from begateway_async import (
    Balance,
    GatewayError,
    JobError,
    JobFailed,
    JobLost,
    RequestRejected,
    SubmitIndeterminate,
    Transaction,
)

__all__ = [
    "CREDENTIALS_REFUSED",
    "error_fields",
    "redacted",
    "result_fields",
    "retryable",
    "unexpected",
]

#: The refusal of our credentials: the run stops, nothing more is sent.
CREDENTIALS_REFUSED: Final = 401

#: Card data that never goes into an output line, wherever the answer holds it.
_CARD_DATA = frozenset({"number", "verification_value", "exp_month", "exp_year"})


def redacted(data: Any) -> Any:
    """An answer without card data: no number, CVV or expiry (last 4, brand, token stay).

    A value under those names goes; what the gateway says of them (``{"number":
    ["is invalid"]}`` in an error) stays.
    """
    if isinstance(data, dict):
        return {
            k: redacted(v)
            for k, v in data.items()
            if k not in _CARD_DATA or isinstance(v, list | dict)
        }
    if isinstance(data, list):
        return [redacted(v) for v in data]
    return data


def retryable(status_code: int | None, asked: bool = True) -> bool:
    """Whether a refused submit is sent afresh (nothing was created for it).

    Always when our credentials were refused (401); for any other 4xx when
    ``asked`` (``--retry-rejected``).
    """
    if status_code == CREDENTIALS_REFUSED:
        return True
    return asked and status_code is not None and 400 <= status_code < 500  # noqa: PLR2004


def result_fields(value: Any) -> dict[str, Any]:
    """The fields of a line that got its result."""
    if isinstance(value, Transaction):
        return {"status": str(value.status), "uid": value.uid, "result": redacted(value.raw)}
    if isinstance(value, Balance):
        return {"status": value.status, "result": redacted(value.raw)}
    if isinstance(value, list):
        return {"status": "successful", "result": [redacted(tx.raw) for tx in value]}
    return {"result": value}  # pragma: no cover - every operation returns one of the above


def error_fields(exc: GatewayError) -> dict[str, Any]:
    """The fields of a line that ended in an error of the library's."""
    fields: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, RequestRejected | JobFailed):
        fields["status_code"] = exc.status_code
        fields["body"] = redacted(exc.body)
    if isinstance(exc, JobError):
        fields["request_id"] = exc.request_id
    if isinstance(exc, JobLost):
        fields["after_lost_reply"] = exc.after_lost_reply
    if isinstance(exc, SubmitIndeterminate):
        fields["idempotency_key"] = exc.idempotency_key
    return fields


def unexpected(exc: Exception) -> dict[str, Any]:
    """The fields of a line the runner itself failed on (never a reason to stop the others)."""
    return {"error": "InternalError", "message": f"{type(exc).__name__}: {exc}"}
