"""The errors carry what the gateway said, from whichever error envelope it used."""

from __future__ import annotations

import pytest

import begateway_async as bga
from begateway_async._errors import job_failure


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"code": "E.1025", "message": "Invalid"}, "E.1025", "Invalid"),
        (
            {"error_code": "invalid_params", "message": "Unprocessable entity"},
            "invalid_params",
            None,
        ),
        ({"response": {"code": "E.1022", "message": "Access denied"}}, "E.1022", "Access denied"),
        ({"response": {"error_code": "x", "message": "m"}}, "x", "m"),
        ({"message": "We're sorry"}, None, "We're sorry"),
        ("<html>", None, None),
    ],
    ids=["v3", "error_code", "nested-code", "nested-error_code", "no-code", "not-json"],
)
def test_the_code_comes_from_any_envelope(body, code, message):
    """`code` and `message` are read from the v3, the error_code and the nested envelopes."""
    for error in (
        bga.RequestRejected(status_code=422, body=body),
        bga.JobFailed(status_code=422, body=body, request_id="r1", tracking_id=None),
    ):
        assert error.code == code
        if message is not None:
            assert error.message == message


@pytest.mark.parametrize(
    ("status", "body", "rejected"),
    [
        (422, {"message": "Date is expired", "errors": {"credit_card": {"exp_year": ["x"]}}}, True),
        (422, {"message": "Unsupported operation"}, True),
        (400, {"errors": {"amount": ["must be an integer"]}}, True),
        (400, {"message": "bad"}, False),
        (500, {"message": "We're sorry, but something went wrong"}, False),
        (500, {"errors": {"base": ["internal"]}}, False),
    ],
)
def test_a_task_error_that_refuses_the_content_is_a_rejection(status, body, rejected):
    """422 (or a 4xx naming fields) refuses what was sent; anything else is processing failing."""
    error = job_failure(status_code=status, body=body, request_id="r1", tracking_id=None)
    assert isinstance(error, bga.JobFailed)
    assert isinstance(error, bga.JobRejected) is rejected
    assert isinstance(error, bga.Rejected) is rejected
    assert isinstance(bga.SubmitRejected(status_code=401, body={}), bga.Rejected)
    assert not isinstance(bga.RequestRejected(status_code=401, body={}), bga.Rejected)  # a poll


def test_a_status_query_answered_404_is_a_typed_not_found():
    body = {"message": "Record not found"}
    error = job_failure(
        status_code=404, body=body, request_id="r1", tracking_id=None, operation="status_query"
    )
    assert isinstance(error, bga.TransactionNotFound)
    other = job_failure(
        status_code=404, body=body, request_id="r1", tracking_id=None, operation="refund"
    )
    assert type(other) is bga.JobFailed  # only a lookup by uid says "no such transaction"
