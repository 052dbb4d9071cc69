"""The errors carry what the gateway said, from whichever error envelope it used."""

from __future__ import annotations

import pytest

import begateway_async as bga


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
