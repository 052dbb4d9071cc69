"""The batch runner's edges: bytes not UTF-8, refused credentials, refused lines, inputs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from begateway_async.cli import main
from begateway_async.testing import DEMO_SHOPS, Fixed, Simulator, serve

SECRET = DEMO_SHOPS["361"]


def line(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "operation": "payment",
        "amount": 5000 + n,
        "currency": "USD",
        "description": f"order {n}",
        "tracking_id": f"batch-{n}",
        "credit_card": {"number": "4200000000000000", "exp_month": 1, "exp_year": 2030},
        **fields,
    }


def write_input(path: Path, rows: list[Any]) -> Path:
    path.write_bytes(
        b"".join(r if isinstance(r, bytes) else json.dumps(r).encode() + b"\n" for r in rows)
    )
    return path


def results(path: Path) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for text in path.read_text().splitlines():
        record = json.loads(text)
        assert record["line"] not in found, f"line {record['line']} answered twice"
        found[record["line"]] = record
    return found


def point_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """The runner's settings: the gateway at ``url``, the demo shop (the secret by environment)."""
    monkeypatch.setenv("BEGATEWAY_URL", url)
    monkeypatch.setenv("BEGATEWAY_SHOP_ID", "361")
    monkeypatch.setenv("BEGATEWAY_SECRET_KEY", SECRET)


@pytest.fixture
def gateway(monkeypatch):
    """A simulator on loopback; the runner's settings point at it (the secret by environment)."""
    simulator = Simulator(processing=Fixed(0.02))
    with serve(simulator) as url:
        point_at(monkeypatch, url)
        yield simulator


@pytest.fixture(params=["sqlite", "postgres"])
def journal(request: pytest.FixtureRequest) -> list[str]:
    """The runner's journal option: its own SQLite file beside the output, or a PostgreSQL one."""
    if request.param == "sqlite":
        return []
    dsn: str = request.getfixturevalue("pg_dsn")
    name = f"batch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    return ["--journal", dsn.rsplit("/", 1)[0] + f"/{name}"]


def test_a_line_that_is_not_utf8_is_reported_and_the_others_run(gateway, tmp_path, capsys):
    """Bytes that are not UTF-8 make that one line bad, by number; the run goes on."""
    source = write_input(tmp_path / "in.jsonl", [line(1), b'{"amount": "\xff\xfe"}\n', line(3)])
    out = tmp_path / "out.jsonl"
    assert main(["run", str(source), "--out", str(out)]) == 1
    found = results(out)
    assert sorted(found) == [1, 2, 3]
    assert (found[2]["error"], found[2]["message"]) == ("InvalidRequest", "not UTF-8")
    assert found[1]["ok"]
    assert found[3]["ok"]
    assert "line 2: not UTF-8" in capsys.readouterr().err


def test_json_too_deep_is_a_bad_line(gateway, tmp_path):
    """A line nested 100 000 deep is a bad line, not a crash of the run."""
    deep = b"[" * 100_000 + b"]" * 100_000 + b"\n"
    source = write_input(tmp_path / "in.jsonl", [deep, line(2)])
    out = tmp_path / "out.jsonl"
    assert main(["run", str(source), "--out", str(out)]) == 1
    found = results(out)
    assert found[1]["error"] == "InvalidRequest"
    assert "RecursionError" in found[1]["message"]
    assert found[2]["ok"]


def test_refused_credentials_stop_the_run_and_a_rerun_pays_every_line(
    gateway, tmp_path, monkeypatch, capsys, journal
):
    """A wrong secret: one refusal, nothing more sent, no line answered; the right one pays all.

    On a shared journal too: the refused line is sent again with a new key.
    """
    source = write_input(tmp_path / "in.jsonl", [line(n) for n in range(1, 11)])
    out = tmp_path / "out.jsonl"
    monkeypatch.setenv("BEGATEWAY_SECRET_KEY", "wrong")
    assert main(["run", str(source), "--out", str(out), "--concurrency", "1", *journal]) == 2
    err = capsys.readouterr().err
    assert err.count("refused the credentials (HTTP 401)") == 1
    assert gateway.stats.requests["submit"] == 1  # nothing more was sent
    assert out.read_text() == ""
    monkeypatch.setenv("BEGATEWAY_SECRET_KEY", SECRET)
    assert main(["run", str(source), "--out", str(out), *journal]) == 0
    assert sorted(results(out)) == list(range(1, 11))
    assert gateway.stats.transactions == 10


class RefusingFirst:
    """The simulator, but the first submit of ``tracking_id`` is refused (422, nothing made)."""

    def __init__(self, simulator: Simulator, tracking_id: str) -> None:
        self.simulator = simulator
        self.tracking_id = tracking_id.encode()
        self.refused = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Refuse the first submit carrying the tracking id; serve the rest as the simulator."""
        if scope["type"] != "http" or scope["method"] != "POST" or self.refused:
            await self.simulator(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.tracking_id not in body:

            async def again() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            await self.simulator(scope, again, send)
            return
        self.refused += 1
        answer = json.dumps({"message": "Try later", "errors": {"base": ["Busy"]}}).encode()
        await send({"type": "http.response.start", "status": 422, "headers": []})
        await send({"type": "http.response.body", "body": answer})


def test_retry_rejected_sends_refused_lines_again_without_force(tmp_path, monkeypatch, journal):
    """A line refused at submit is answered failed; `--retry-rejected` sends it afresh, once."""
    simulator = Simulator(processing=Fixed(0.02))
    app = RefusingFirst(simulator, "batch-2")
    source = write_input(tmp_path / "in.jsonl", [line(1), line(2), line(3)])
    out = tmp_path / "out.jsonl"
    with serve(app) as url:
        point_at(monkeypatch, url)
        assert main(["run", str(source), "--out", str(out), *journal]) == 1
        first = results(out)
        assert (first[2]["error"], first[2]["status_code"]) == ("SubmitRejected", 422)
        assert main(["run", str(source), "--out", str(out), *journal]) == 1  # nothing sent
        assert results(out) == first
        assert main(["run", str(source), "--out", str(out), "--retry-rejected", *journal]) == 0
        found = results(out)  # each line once: the refused one replaced
    assert sorted(found) == [1, 2, 3]
    assert all(r["ok"] for r in found.values())
    assert simulator.stats.transactions == 3


def test_another_input_with_the_same_output_is_refused(gateway, tmp_path, capsys):
    """The journal is bound to its input: a different file is refused, nothing mixed in."""
    first = write_input(tmp_path / "a.jsonl", [line(1), line(2)])
    second = write_input(tmp_path / "b.jsonl", [line(7), line(8), line(9)])
    out = tmp_path / "out.jsonl"
    assert main(["run", str(first), "--out", str(out)]) == 0
    before = out.read_text()
    assert main(["run", str(second), "--out", str(out)]) == 2
    assert "belongs to another input" in capsys.readouterr().err
    assert out.read_text() == before
    assert gateway.stats.transactions == 2


class RefusingPolls:
    """The simulator, but every poll is refused (401) while ``refusing`` is set."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self.refusing = True

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Refuse polls while refusing; serve everything else as the simulator."""
        polling = scope["type"] == "http" and scope["path"].startswith("/async/result/")
        if not (self.refusing and polling):
            await self.simulator(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b'{"message": "Unauthorized"}'})


def test_credentials_refused_while_polling_are_resumed_by_the_next_run(tmp_path, monkeypatch):
    """A poll refused for the credentials stops the run; the next polls that job, paid once."""
    simulator = Simulator(processing=Fixed(0.02))
    app = RefusingPolls(simulator)
    source = write_input(tmp_path / "in.jsonl", [line(1)])
    out = tmp_path / "out.jsonl"
    with serve(app) as url:
        point_at(monkeypatch, url)
        assert main(["run", str(source), "--out", str(out)]) == 2
        assert out.read_text() == ""  # not answered: the task may exist
        app.refusing = False
        assert main(["run", str(source), "--out", str(out)]) == 0
    (record,) = results(out).values()
    assert record["ok"]
    assert simulator.stats.requests["submit"] == 1  # polled again, never sent again
    assert simulator.stats.transactions == 1


def test_a_line_sent_afresh_is_answered_once_when_its_answer_missed_the_output(
    tmp_path, monkeypatch
):
    """Refused, then sent afresh, then killed before its line was written: one line, the new one."""
    simulator = Simulator(processing=Fixed(0.02))
    source = write_input(tmp_path / "in.jsonl", [line(1), line(2)])
    out = tmp_path / "out.jsonl"
    with serve(RefusingFirst(simulator, "batch-2")) as url:
        point_at(monkeypatch, url)
        assert main(["run", str(source), "--out", str(out)]) == 1
        assert main(["run", str(source), "--out", str(out), "--retry-rejected"]) == 0
        kept = [r for r in out.read_text().splitlines() if json.loads(r)["line"] != 2]
        out.write_text("".join(r + "\n" for r in kept))  # as if killed before writing line 2
        assert main(["run", str(source), "--out", str(out)]) == 0
    found = results(out)  # asserts each line once
    assert sorted(found) == [1, 2]
    assert found[2]["ok"]
    assert simulator.stats.transactions == 2


def test_a_body_sealed_with_other_credentials_is_left_for_the_right_ones(
    gateway, tmp_path, monkeypatch, capsys
):
    """With the wrong secret an unanswered line cannot be opened: left, never answered wrong."""
    from begateway_async.testing import Fault, Faults  # noqa: PLC0415

    gateway.faults = Faults(truncate=Fault(script=[True] * 3, on={"submit"}))
    source = write_input(tmp_path / "in.jsonl", [line(1)])
    out = tmp_path / "out.jsonl"
    assert main(["run", str(source), "--out", str(out)]) == 1  # no answer after 3 sends
    monkeypatch.setenv("BEGATEWAY_SECRET_KEY", "wrong")
    assert main(["run", str(source), "--out", str(out)]) == 1
    assert "line 1: not settled (JournalError)" in capsys.readouterr().err
    assert out.read_text() == ""
    monkeypatch.setenv("BEGATEWAY_SECRET_KEY", SECRET)
    assert main(["run", str(source), "--out", str(out)]) == 0
    (record,) = results(out).values()
    assert record["ok"]
    assert gateway.stats.transactions == 1
