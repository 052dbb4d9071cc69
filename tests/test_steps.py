"""The poll step table, row by row, on the sans-I/O `_steps` module."""

from __future__ import annotations

import attrs
import pytest

import begateway_async as bga
from begateway_async import _protocol as p
from begateway_async import _steps as s

NOW = 1_767_225_600.0
DAY = 86_400.0
BASE = "https://gw.test"
TX = {"transaction": {"uid": "u1", "status": "successful", "type": "payment"}}
ERROR = {"message": "Amount is invalid.", "errors": {"amount": ["is invalid"]}}


@attrs.frozen
class Facts:
    """A job's facts, as `decide_step` reads them."""

    request_id: str = "r1"
    tracking_id: str | None = "order-42"
    operation: str = "payment"
    created_at: float = NOW - 10.0
    response_url: str = f"{BASE}/async/result/r1"


def step(outcome: p.PollOutcome, *, lost_reply: bool = False, **facts: object) -> s.PollStep:
    return s.decide_step(Facts(**facts), outcome, lost_reply=lost_reply, now=NOW, base_url=BASE)  # type: ignore[arg-type]


def test_done_ends_with_the_result():
    """Done, readable as the operation's result: End with the transaction; nothing to journal."""
    outcome = step(p.Done(TX))
    assert isinstance(outcome, s.End)
    assert isinstance(outcome.value, bga.Transaction)
    assert outcome.value.uid == "u1"
    assert outcome.error is None
    assert not outcome.journal


def test_done_of_a_tracking_id_query_is_a_list():
    """Done for a tracking-id query: End with the list of its transactions."""
    listed = {"transactions": [TX["transaction"]]}
    outcome = step(p.Done(listed), operation="tracking_id_query", tracking_id=None)
    assert isinstance(outcome, s.End)
    assert [tx.uid for tx in outcome.value] == ["u1"]


def test_unreadable_done_ends_malformed():
    """Done that is not a transaction: End with MalformedResponse carrying the body."""
    outcome = step(p.Done({"nothing": "here"}))
    assert isinstance(outcome, s.End)
    assert isinstance(outcome.error, bga.MalformedResponse)
    assert outcome.error.body == {"nothing": "here"}
    assert not outcome.journal  # the body itself is on record


def test_failed_ends_with_the_whole_body():
    """Failed: End with JobFailed carrying the status and the whole one-shot body."""
    outcome = step(p.Failed(422, ERROR))
    assert isinstance(outcome, s.End)
    assert isinstance(outcome.error, bga.JobFailed)
    assert (outcome.error.status_code, outcome.error.body) == (422, ERROR)
    assert outcome.error.tracking_id == "order-42"
    assert not outcome.journal


def test_unknown_expired_ends_expired():
    """Unknown after 24 h: End with JobExpired, journalled as the entry's end."""
    outcome = step(p.Unknown(expired=True))
    assert isinstance(outcome, s.End)
    assert isinstance(outcome.error, bga.JobExpired)
    assert outcome.journal


def test_unknown_after_a_lost_reply_looks_up():
    """Unknown before 24 h after a lost reply, with a tracking id: look it up first."""
    assert step(p.Unknown(expired=False), lost_reply=True) == s.LookUp()


@pytest.mark.parametrize(
    ("lost_reply", "facts"),
    [
        (False, {}),
        (True, {"tracking_id": None}),
        (True, {"operation": "status_query"}),
    ],
    ids=["no-lost-reply", "no-tracking-id", "a-query"],
)
def test_unknown_otherwise_ends_lost(lost_reply, facts):
    """Unknown before 24 h, nothing to look up by: End with JobLost, journalled."""
    outcome = step(p.Unknown(expired=False), lost_reply=lost_reply, **facts)
    assert isinstance(outcome, s.End)
    assert isinstance(outcome.error, bga.JobLost)
    assert outcome.error.after_lost_reply is lost_reply
    assert outcome.journal


def test_refused_ends_rejected():
    """Refused (401/403) while polling: End with RequestRejected; the entry is left unfinished."""
    outcome = step(p.Refused(401, {"message": "Unauthorized"}))
    assert isinstance(outcome, s.End)
    assert isinstance(outcome.error, bga.RequestRejected)
    assert outcome.error.status_code == 401
    assert not outcome.journal  # the task may exist: the right credentials resume it


@pytest.mark.parametrize(
    ("given", "polled"),
    [
        (f"{BASE}/async/result/r9", f"{BASE}/async/result/r9"),
        ("/async/result/r9", f"{BASE}/async/result/r9"),
        (None, f"{BASE}/async/result/r1"),
    ],
    ids=["absolute", "relative", "missing"],
)
def test_completed_polls_the_result_at_once(given, polled):
    """Completed on the gateway's origin: poll its response URL (or the job's) at once."""
    assert step(p.Completed(given)) == s.Next(url=polled, now=True)


def test_completed_off_the_origin_ends_unsafe():
    """Completed with a URL on another origin: End with UnsafeURL; it is never requested."""
    outcome = step(p.Completed("https://evil.test/async/result/r1"))
    assert isinstance(outcome, s.End)
    assert isinstance(outcome.error, bga.UnsafeURL)
    assert outcome.journal


def test_throttled_pauses_the_host():
    """Throttled: poll again after Retry-After, and hold every poll to the host meanwhile."""
    assert step(p.Throttled(7.0)) == s.Next(7.0, pause_host=True)


def test_transient_is_retried_and_noted():
    """Transient before 24 h: poll again, keep the reason, carry whether a reply was lost."""
    outcome = step(p.Transient("ReadTimeout", maybe_consumed=True))
    assert outcome == s.Next(None, note="ReadTimeout", lost_reply=True)


def test_transient_past_24_hours_ends_expired():
    """Transient 24 h after creation: the result is gone whatever comes; End with JobExpired."""
    outcome = step(p.Transient("ReadTimeout"), created_at=NOW - DAY)
    assert isinstance(outcome, s.End)
    assert isinstance(outcome.error, bga.JobExpired)
    assert outcome.journal


@pytest.mark.parametrize("retry_after", [None, 3.0])
def test_processing_polls_again(retry_after):
    """Processing: poll again, after Retry-After when the gateway gave one."""
    assert step(p.Processing(retry_after)) == s.Next(retry_after)


@pytest.mark.parametrize(
    ("operation", "types"),
    [("payment", {"payment"}), ("payout", {"payout", "credit"}), ("refund", {"refund"})],
)
def test_types_of(operation, types):
    """A payout's transactions may be typed credit (the legacy path); others their own name."""
    assert s.types_of(operation) == types
