"""The decision table, row by row, on the sans-I/O `_protocol` module."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from begateway_async import _protocol as p

NOW = 1_767_225_600.0
DAY = 86_400.0
BASE = "https://gw.test"


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


def headers(**values: str) -> httpx.Headers:
    return httpx.Headers({k.replace("_", "-"): v for k, v in values.items()})


def submit(status: int, data: Any, **hdrs: str) -> p.SubmitOutcome:
    raw = data if isinstance(data, bytes) else body(data)
    return p.decide_submit(status, headers(**hdrs), raw, now=NOW)


def poll(status: int, data: Any, *, age: float = 10.0, **hdrs: str) -> p.PollOutcome:
    raw = data if isinstance(data, bytes) else body(data)
    return p.decide_poll(status, headers(**hdrs), raw, now=NOW, created_at=NOW - age)


ACK = {
    "status": "processing",
    "request_id": "a2ac9f8e-1b22-486b-be46-528e48be6c76",
    "status_url": f"{BASE}/async/status/a2ac9f8e-1b22-486b-be46-528e48be6c76",
    "response_url": f"{BASE}/async/result/a2ac9f8e-1b22-486b-be46-528e48be6c76",
}
TX = {"transaction": {"uid": "u1", "status": "successful", "type": "payment"}}
V3_TX = {"uid": "u1", "status": "successful", "type": "payment", "code": "S.0000"}
V2_ERROR = {"message": "Currency can't be blank.", "errors": {"currency": ["can't be blank"]}}
NESTED_ERROR = {"response": {"status": "error", "message": "Access denied"}}
V3_ERROR = {"code": "E.1025", "friendly_message": "Invalid request params", "message": "x"}
SORRY = {"message": "We're sorry, but something went wrong"}


# --- submit -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 202])
def test_submit_ack(status):
    """POST → 200/202 processing with request_id and URLs: the task was created."""
    outcome = submit(status, ACK)
    assert outcome == p.Ack(ACK["request_id"], ACK["status_url"], ACK["response_url"])


def test_submit_ack_already_completed():
    """POST → completed acknowledgement: the task exists and its result can be fetched now."""
    outcome = submit(200, {**ACK, "status": "completed"})
    assert isinstance(outcome, p.Ack)
    assert outcome.completed


def test_submit_ack_v3_code():
    """A v3 acknowledgement carrying code 8010 is still an acknowledgement."""
    assert isinstance(submit(200, {**ACK, "code": "8010"}), p.Ack)


def test_submit_ack_without_request_id_is_rejected():
    """A 'processing' answer without a request_id cannot be followed: refused, not guessed."""
    outcome = submit(200, {"status": "processing"})
    assert isinstance(outcome, p.Rejected)


@pytest.mark.parametrize("shape", [TX, V3_TX])
def test_submit_immediate_result(shape):
    """POST answered with the transaction itself (classic or v3): the result, at once."""
    assert submit(200, shape) == p.Immediate(shape)


@pytest.mark.parametrize(
    ("status", "data"),
    [
        (401, {"message": "Invalid shop_id/secret_key."}),
        (401, NESTED_ERROR),
        (422, V2_ERROR),
        (422, V3_ERROR),
        (400, {"error_code": "invalid_params", "message": "Unprocessable entity"}),
        (200, V2_ERROR),
        (500, SORRY),
        (404, b"Not Found"),
    ],
)
def test_submit_refused(status, data):
    """POST → 401 / 4xx / an error envelope: the submit was refused, with the parsed body."""
    outcome = submit(status, data)
    assert isinstance(outcome, p.Rejected)
    assert outcome.status_code == status
    assert outcome.body == (data.decode() if isinstance(data, bytes) else data)


@pytest.mark.parametrize(
    ("status", "data"),
    [
        (500, b"<html><body>Internal Server Error</body></html>"),
        (502, b"<html>Bad Gateway</html>"),
        (504, b""),
        (408, b""),
        (502, SORRY),
        (200, b'{"status": "processing", "request_'),
        (200, b"<html>ok</html>"),
    ],
)
def test_submit_indeterminate(status, data):
    """POST → 5xx without a JSON error, a proxy error or a garbled 2xx: re-send, same RequestID."""
    outcome = submit(status, data)
    assert isinstance(outcome, p.Resend)
    assert not outcome.throttled


@pytest.mark.parametrize("status", [429, 503])
def test_submit_throttled(status):
    """POST → 429/503: throttled; re-send after Retry-After with the same RequestID."""
    outcome = submit(status, b"", retry_after="7")
    assert outcome == p.Resend(f"HTTP {status}", 7.0, throttled=True)


# --- poll ---------------------------------------------------------------------------------


def test_poll_processing_200():
    """GET → 200 processing: still running."""
    assert poll(200, {"status": "processing", "request_id": "r1"}) == p.Processing()


def test_poll_processing_425():
    """GET → 425 Too Early (with or without a body): still running."""
    rb_mock = {"status": "processing", "status_url": "x", "response_url": "y"}
    assert poll(425, rb_mock) == p.Processing()
    assert poll(425, b"") == p.Processing()


def test_poll_processing_honours_retry_after():
    """A processing answer with Retry-After says when to ask again."""
    assert poll(425, b"", retry_after="3") == p.Processing(3.0)


def test_poll_status_completed():
    """GET status_url → completed with response_url: fetch the result now."""
    url = f"{BASE}/async/result/r1"
    assert poll(200, {"status": "completed", "request_id": "r1", "response_url": url}) == (
        p.Completed(url)
    )


@pytest.mark.parametrize(
    "shape", [TX, V3_TX, {"transactions": []}, {"status": "successful", "result": {}}]
)
def test_poll_result(shape):
    """GET response_url → 200 result (classic, v3, list, balance): done, with the body."""
    assert poll(200, shape) == p.Done(shape)


def test_poll_incomplete_result_is_done():
    """A result whose transaction is incomplete (3-D Secure) is a result, not 'still running'."""
    shape = {"transaction": {"uid": "u1", "status": "incomplete", "redirect_url": "https://x"}}
    assert poll(200, shape) == p.Done(shape)


@pytest.mark.parametrize(
    ("status", "data"),
    [(422, V2_ERROR), (422, NESTED_ERROR), (422, V3_ERROR), (500, SORRY), (400, {"errors": {}})],
)
def test_poll_one_shot_error(status, data):
    """GET → non-200 JSON error body: the task failed; the body is kept whole."""
    assert poll(status, data) == p.Failed(status, data)


def test_poll_error_envelope_with_200():
    """A 200 error envelope (not a transaction) is the task's failure too."""
    assert poll(200, SORRY) == p.Failed(200, SORRY)


def test_poll_unknown_before_24h_is_lost():
    """GET → 404 unknown before 24 h from creation: lost."""
    assert poll(404, {"status": "unknown", "request_id": "r1"}, age=DAY - 1) == p.Unknown(
        expired=False
    )


@pytest.mark.parametrize("age", [DAY, DAY + 1, 7 * DAY])
def test_poll_unknown_after_24h_is_expired(age):
    """GET → 404 unknown at or after 24 h from creation: expired."""
    assert poll(404, {"status": "unknown", "request_id": "r1"}, age=age) == p.Unknown(expired=True)


def test_poll_throttled_429():
    """GET → 429 with Retry-After: pause the host that long."""
    assert poll(429, b"", retry_after="12") == p.Throttled(12.0)


def test_poll_throttled_429_without_retry_after():
    """GET → 429 without Retry-After: still throttled; the policy picks the pause."""
    assert poll(429, b"") == p.Throttled(None)


def test_poll_throttled_503_with_http_date():
    """GET → 503 with an HTTP-date Retry-After: throttled until that date."""
    outcome = poll(503, b"", retry_after="Thu, 01 Jan 2026 00:00:30 GMT")
    assert outcome == p.Throttled(30.0)


@pytest.mark.parametrize(
    ("status", "data"),
    [
        (502, b"<html>Bad Gateway</html>"),
        (504, b""),
        (503, b"Service Unavailable"),
        (500, b"<html><h1>Internal Server Error</h1></html>"),
        (200, b'{"transaction": {"uid": "u1", "sta'),
        (200, b"\xff\xfe garbage"),
        (200, b"[1, 2]"),
        (502, SORRY),
    ],
)
def test_poll_transient(status, data):
    """GET → 502/504, HTML, truncated or non-object JSON: transient, retry with backoff.

    Each may have been a one-shot error body garbled on the way, so each says so.
    """
    outcome = poll(status, data)
    assert isinstance(outcome, p.Transient)
    assert outcome.maybe_consumed


@pytest.mark.parametrize("status", [401, 403])
def test_poll_refused(status):
    """GET → 401/403: our credentials were refused while polling."""
    assert isinstance(poll(status, {"message": "Access denied"}), p.Refused)


# --- helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("nan", None),
        ("Thu, 01 Jan 2026 00:01:00 GMT", 60.0),
        ("Wed, 31 Dec 2025 23:59:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value, expected):
    """Retry-After is read as seconds or an HTTP date, never negative, None when unreadable."""
    assert p.parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"{BASE}/async/result/r1", f"{BASE}/async/result/r1"),
        ("/async/result/r1", f"{BASE}/async/result/r1"),
        ("https://GW.test:443/async/result/r1", "https://GW.test:443/async/result/r1"),
        ("https://evil.test/async/result/r1", None),
        ("http://gw.test/async/result/r1", None),
        ("https://gw.test:8443/async/result/r1", None),
        ("https://user:pw@gw.test/async/result/r1", None),
        ("https://gw.test@evil.test/async/result/r1", None),
        ("//evil.test/async/result/r1", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_resolve_url_same_origin_only(url, expected):
    """Task URLs on another origin, with user info, or of another scheme are refused."""
    assert p.resolve_url(url, BASE) == expected


# --- answers that once were read wrong ----------------------------------------------------

BALANCE_V3 = {"code": "S.0000", "status": "successful", "message": "ok", "bank_info": {"a": 1}}


@pytest.mark.parametrize(
    "data",
    [BALANCE_V3, {"code": "P.1019", "message": "Transaction in progress"}],
    ids=["success-code", "pending-code"],
)
def test_a_success_or_pending_code_is_never_an_error(data):
    """A v3 answer without uid but with an S. or P. code is a result, never an error envelope."""
    assert poll(200, data) == p.Done(data)
    assert submit(200, data) == p.Immediate(data)


def test_an_error_code_is_still_an_error():
    """Any other v3 code without a result stays an error envelope."""
    assert isinstance(poll(200, {"code": "E.1000", "message": "x"}), p.Failed)


@pytest.mark.parametrize(
    ("status", "reason"),
    [(301, "redirect"), (302, "redirect"), (307, "redirect"), (308, "redirect")],
)
def test_poll_redirect_is_malformed(status, reason):
    """A 3xx on a poll is never followed (it would carry the credentials): Malformed."""
    outcome = poll(status, b"", location="https://evil.test/")
    assert isinstance(outcome, p.Malformed)
    assert reason in outcome.reason


def test_poll_json_too_deep_is_malformed():
    """JSON nested 100 000 deep is Malformed, not an exception nor a passing failure."""
    outcome = poll(200, b"[" * 100_000 + b"]" * 100_000)
    assert isinstance(outcome, p.Malformed)
    assert "too deeply" in outcome.reason


def test_submit_json_too_deep_is_resent():
    """A 2xx submit answer nested too deep is garbled: re-sent with the same RequestID."""
    assert isinstance(submit(200, b"[" * 100_000 + b"]" * 100_000), p.Resend)


@pytest.mark.parametrize(
    "status",
    [["processing"], {"a": 1}, 7, None],
    ids=["list", "object", "number", "null"],
)
def test_a_status_of_any_type_is_not_a_task_envelope(status):
    """A status that is not a string never crashes the decision (nor makes a task envelope)."""
    assert isinstance(poll(200, {"status": status}), p.Done)


@pytest.mark.parametrize(
    "url", ["http://[::1", "https://gw.test:99999/x", "https://gw.test:port/x", "//evil.test/x"]
)
def test_resolve_url_refuses_what_is_not_a_url(url):
    """A URL that urllib cannot even split is refused (None), never an exception."""
    assert p.resolve_url(url, BASE) is None


@pytest.mark.parametrize(
    "value", ["Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT", "nan", "-inf"]
)
def test_retry_after_out_of_range_never_raises(value):
    """A Retry-After out of any range reads as a delay of zero or more, or as none."""
    found = p.parse_retry_after(value, NOW)
    assert found is None or 0 <= found < float("inf")
