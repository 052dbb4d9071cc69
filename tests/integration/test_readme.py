"""The README's scripts, saved as they are and run as a reader would, against the simulator."""

from __future__ import annotations

import json
import runpy
import signal
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import httpx
import pytest
from readme_helpers import (
    QUICK,
    block_after,
    json_objects,
    parent_and_token,
    run_sample,
    run_script,
    shop_env,
)
from webhook_helpers import loopback_socket, serving

from begateway_async.testing import spawn


def test_the_intro_pays_one_payment(tmp_path: Path):
    """`pay.py`, the first sample, prints the payment's status and uid."""
    done = run_sample(tmp_path, "pay.py", "keeps the result for you to fetch")
    status, uid = done.stdout.split()
    assert status == "successful"
    assert len(uid) > 8


def test_the_batch_runner_sample_runs_as_shown(tmp_path: Path):
    """The JSONL lines of the README, their placeholders filled in, each give a transaction."""
    sample = block_after("is the batch runner", "json")
    with spawn(QUICK) as url:
        parent, token = anyio.run(parent_and_token, url)
        filled = sample.replace('"dd6ee60c-…"', json.dumps(parent)).replace(
            '"…"', json.dumps(token)
        )
        assert "…" not in filled  # every placeholder was one of these two
        source = tmp_path / "jobs.jsonl"
        source.write_text(filled)
        out = tmp_path / "results.jsonl"
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "begateway_async", "run", str(source), "--out", str(out)],
            capture_output=True, text=True, env=shop_env(url), timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answers = sorted((json.loads(line) for line in out.read_text().splitlines()), key=str)
    assert [a["ok"] for a in answers] == [True] * len(sample.strip().splitlines())
    kinds = {a["result"].get("transaction", a["result"])["type"] for a in answers}
    assert kinds == {"refund", "payment"}


def test_the_script_quickstart_refunds_each_row_of_its_csv(tmp_path: Path):
    """The README's `refund_all.py`, saved as it is, run with a CSV of two payments to refund."""
    script = tmp_path / "refund_all.py"
    script.write_text(block_after("## Quickstart: a script submitting many"))
    with spawn(QUICK) as url:
        first, _ = anyio.run(parent_and_token, url, 5001)  # not a duplicate of each other
        second, _ = anyio.run(parent_and_token, url, 5002)
        rows = tmp_path / "refunds.csv"
        rows.write_text(f"{first},1000\n{second},2000\n")
        done = run_script(script, str(rows), env=shop_env(url))
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == sorted(
        [f"{first} successful", f"{second} successful"]
    )


def test_the_web_quickstart_pays_an_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The README's `app.py`, saved as it is, served, and asked to pay one order by token."""
    source = block_after("## Quickstart: a web app awaiting one payment")
    with spawn(QUICK) as url:
        _, token = anyio.run(parent_and_token, url, 6001)
        for name, value in shop_env(url).items():
            monkeypatch.setenv(name, value)
        app = tmp_path / "app.py"
        app.write_text(source)
        namespace = runpy.run_path(str(app))  # as `uvicorn app:app` imports it

        async def order() -> dict[str, object]:
            async with (
                serving(namespace["app"], loopback_socket()) as shop,  # its lifespan runs
                httpx.AsyncClient(base_url=shop) as client,
            ):
                answer = await client.post(
                    "/pay", json={"id": 7, "amount_cents": 3245, "card_token": token}
                )
            payload: dict[str, object] = answer.json()
            return payload

        answer = anyio.run(order)
    assert answer["state"] == "successful"
    assert isinstance(answer["uid"], str)


def test_the_journal_sample_finishes_a_killed_runs_payment(tmp_path: Path):
    """`checkout.py` killed after its submit: the next run awaits that payment, then its own."""
    script = tmp_path / "checkout.py"
    script.write_text(block_after("## Surviving a crash"))
    with spawn(["--median", "2", "--p99", "3"]) as url:  # the bank is slower than the kill
        env = shop_env(url)
        first = subprocess.Popen(  # noqa: S603
            [sys.executable, str(script), "1042", "1999"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        )  # fmt: skip
        watchdog = threading.Timer(60, first.kill)  # the read below never waits for ever
        watchdog.start()
        try:
            assert first.stdout is not None
            assert first.stdout.readline() == "order-1042 submitted\n"
            first.send_signal(signal.SIGKILL)  # no cleanup: the journal is all that is left
            first.wait()
        finally:
            watchdog.cancel()
        assert first.stderr is not None
        first.stderr.close()
        first.stdout.close()
        assert (tmp_path / "payments.db").stat().st_mode & 0o777 == 0o600
        done = run_script(script, "1043", "2999", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "order-1042 resumed: successful",
        "order-1043 submitted",
        "order-1043 successful",
    ]


def test_the_testing_sample_is_a_passing_test(tmp_path: Path):
    """`test_checkout.py`, saved as it is, passes under pytest (on virtual time)."""
    (tmp_path / "test_checkout.py").write_text(block_after("endpoint and per job, readable as"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "test_checkout.py"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr  # 0: it ran (5 would be none)
    assert " passed" in done.stdout  # once per anyio backend installed


def test_the_observability_sample_prints_its_spans_its_event_and_its_log_line(tmp_path: Path):
    """`traced.py`: the job's span and its requests' on stdout, `Ended` too, the INFO line."""
    done = run_sample(tmp_path, "traced.py", "## Observability")
    spans = json_objects(done.stdout)
    (job,) = [s for s in spans if s["name"] == "begateway payment"]
    assert job["attributes"]["begateway.outcome"] == "successful"
    requests = [s for s in spans if s["parent_id"] == job["context"]["span_id"]]
    assert [s["name"] for s in requests][:1] == ["POST"]
    assert len(requests) == job["attributes"]["begateway.requests"]
    assert f"ended: payment successful after {len(requests)} requests" in done.stdout
    assert "INFO:begateway_async.jobs:payment " in done.stderr
