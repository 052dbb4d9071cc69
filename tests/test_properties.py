"""Any answer, tried by machine: the pure layer gives a typed outcome, never another exception.

Hypothesis draws status codes, headers and bodies (JSON of any shape and
depth, truncated or not UTF-8, huge numbers, wrong types at every key) for
the submit and poll decisions, the poll step, the result parser, the
notification verifier and the batch runner's line reader. The default run
tries a bounded number of inputs (deterministic); ``nox -s soak`` tries
many more (``BEGATEWAY_SOAK=1``), with ``--hypothesis-show-statistics``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import begateway_async as bga
from begateway_async import _protocol as p
from begateway_async import _steps as s
from begateway_async._jobs import read_token
from begateway_async._serde import parse_result
from begateway_async.cli._input import request_from_mapping
from begateway_async.cli._runfiles import lines
from begateway_async.webhooks import WebhookVerifier
from fakes import SECRET, SHOP_ID, transaction

settings.register_profile(
    "default",
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "soak",
    max_examples=20_000,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile("soak" if os.environ.get("BEGATEWAY_SOAK") == "1" else "default")

NOW = 1_767_225_600.0
BASE = "https://gw.test"
KEYS = [
    "status", "uid", "transaction", "transactions", "result", "message", "errors", "response",
    "code", "error_code", "request_id", "status_url", "response_url", "type", "amount",
    "currency", "tracking_id", "credit_card", "payment_method", "created_at",
    "three_d_secure_verification", "be_protected_verification", "avs_cvc_verification",
    "links", "id", "state", "plan",
]  # fmt: skip
STATUSES = ["processing", "completed", "unknown", "successful", "failed", "incomplete", "error"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False),
    st.sampled_from([*STATUSES, "S.0000", "E.1025", "8010", "/async/result/x", "http://[::1"]),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=6
        ),
    ),
    max_leaves=40,
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """JSON of any shape, or it truncated, or bytes that are not even UTF-8."""
    kind = draw(st.sampled_from(["json", "truncated", "bytes", "deep", "shaped"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "deep":
        depth = draw(st.integers(min_value=500, max_value=5000))
        return b"[" * depth + b"]" * depth
    if kind == "shaped":  # something close to what the gateway sends, one key off
        base = draw(st.sampled_from([transaction(), {"status": "processing", "request_id": "r"}]))
        key = draw(st.sampled_from(KEYS))
        base = {**base, key: draw(json_values)}
        return json.dumps(base).encode()
    text = json.dumps(draw(json_values)).encode()
    if kind == "truncated":
        return text[: draw(st.integers(min_value=0, max_value=len(text)))]
    return text


headers = st.dictionaries(
    st.sampled_from(["retry-after", "content-type", "x-other"]),
    st.one_of(
        st.text(max_size=30),
        st.sampled_from(["-5", "0", "nan", "inf", "1e309", "Fri, 31 Dec 9999 23:59:59 GMT"]),
    ),
    max_size=3,
)
statuses = st.one_of(
    st.sampled_from([200, 202, 302, 401, 403, 404, 422, 425, 429, 500, 503]), st.integers(0, 999)
)


@given(statuses, headers, bodies())
def test_any_answer_to_a_submit_is_an_outcome(status, hdrs, body):
    """decide_submit gives one of its outcomes for any status, headers and body."""
    outcome = p.decide_submit(status, hdrs, body, now=NOW)
    assert isinstance(outcome, p.Ack | p.Immediate | p.Rejected | p.Resend)


@attrs.frozen
class Facts:
    """A job's facts, as decide_step reads them."""

    operation: str
    created_at: float
    tracking_id: str | None = "t1"
    request_id: str = "r1"
    response_url: str = f"{BASE}/async/result/r1"


jobs = st.builds(
    Facts,
    operation=st.sampled_from(
        ["payment", "refund", "tracking_id_query", "balance_query", "payout"]
    ),
    created_at=st.floats(min_value=NOW - 2 * 86_400, max_value=NOW),
    tracking_id=st.one_of(st.none(), st.just("t1")),
)


@given(statuses, headers, bodies(), jobs, st.booleans())
def test_any_answer_to_a_poll_gives_a_step(status, hdrs, body, job, lost):
    """decide_poll and then decide_step give a step for any answer, whatever the job."""
    outcome = p.decide_poll(status, hdrs, body, now=NOW, created_at=job.created_at)
    step = s.decide_step(job, outcome, lost_reply=lost, now=NOW, base_url=BASE)
    assert isinstance(step, s.End | s.Next | s.LookUp)
    if isinstance(step, s.End) and step.error is not None:
        assert isinstance(step.error, bga.GatewayError)


@given(json_values, st.sampled_from(["transaction", "transactions", "balance"]))
def test_any_body_is_a_result_or_malformed(body, kind):
    """parse_result gives the operation's result or MalformedResponse, nothing else."""
    try:
        result = parse_result(kind, body)
    except bga.MalformedResponse as exc:
        kept = exc.body
        assert kept is body  # nothing lost
    else:
        assert isinstance(result, bga.Transaction | bga.Balance | list)


VERIFIER = WebhookVerifier(SHOP_ID, SECRET)
AUTH = "Basic " + base64.b64encode(f"{SHOP_ID}:{SECRET}".encode()).decode()


@given(bodies(), st.one_of(st.just(AUTH), st.text(max_size=40)))
def test_any_notification_is_a_transaction_or_refused(body, authorization):
    """The verifier gives a transaction with a uid, or a WebhookRejected, for any request."""
    try:
        tx = VERIFIER.verify(body, {"authorization": authorization})
    except bga.WebhookRejected:
        return
    assert tx.uid


@given(st.lists(st.one_of(bodies(), st.binary(max_size=50)), max_size=6))
def test_any_line_of_a_batch_is_a_request_or_refused(rows):
    """The line reader and the request builder give a request or InvalidRequest, for any line."""
    stream = io.BytesIO(b"\n".join(row.replace(b"\n", b" ") for row in rows))
    for _, line in lines(stream):
        if line is None:
            continue
        try:
            data: Any = json.loads(line)
        except (ValueError, RecursionError):
            continue
        try:
            request = request_from_mapping(data)
        except bga.InvalidRequest:
            continue
        assert isinstance(request, bga.Request)


@given(json_values)
def test_any_mapping_is_a_request_or_refused(data):
    """request_from_mapping refuses anything it cannot build with InvalidRequest only."""
    if isinstance(data, dict):
        data = {"operation": "payment", **data} if "operation" not in data else data
    with contextlib.suppress(bga.InvalidRequest):
        request_from_mapping(data)


@given(st.one_of(st.text(max_size=200), st.binary(max_size=100), json_values.map(json.dumps)))
def test_any_token_is_read_or_refused(token):
    """read_token returns fields or raises InvalidRequest for anything given."""
    with contextlib.suppress(bga.InvalidRequest):
        read_token(token)


@given(st.one_of(st.none(), st.text(max_size=60)))
def test_any_retry_after_is_a_delay_or_none(value):
    """A Retry-After header reads as a finite delay of zero or more, or as none."""
    found = p.parse_retry_after(value, NOW)
    assert found is None or 0 <= found < float("inf")


@given(st.text(max_size=80))
def test_any_url_is_resolved_on_the_origin_or_refused(url):
    """resolve_url gives a URL on the gateway's origin, or None."""
    resolved = p.resolve_url(url, BASE)
    assert resolved is None or resolved.startswith(BASE)
