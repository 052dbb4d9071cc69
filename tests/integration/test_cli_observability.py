"""The command line's logs (`--log-level`, `--log-json`) and spans (`demo --otel console`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from readme_helpers import QUICK, json_objects, shop_env

from begateway_async.testing import DEMO_SHOPS, spawn

COMMAND = [sys.executable, "-m", "begateway_async"]
CARD = {"number": "4200000000000000", "exp_month": "05", "exp_year": "2030"}


def test_a_batch_run_logs_each_job_as_a_json_line(tmp_path: Path):
    """`run --log-level info --log-json`: one JSON object per job's end, its fields as keys."""
    lines = [
        {"operation": "payment", "amount": 100 + n, "currency": "USD", "description": "x",
         "tracking_id": f"t-{n}", "credit_card": CARD}
        for n in range(2)
    ]  # fmt: skip
    source = tmp_path / "jobs.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with spawn(QUICK) as url:
        done = subprocess.run(  # noqa: S603
            [*COMMAND, "run", str(source), "--out", str(tmp_path / "out.jsonl"),
             "--log-level", "info", "--log-json"],
            capture_output=True, text=True, env=shop_env(url), timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    ends = [r for r in records if r["logger"] == "begateway_async.jobs" and r["level"] == "INFO"]
    assert sorted((r["tracking_id"], r["outcome"], r["operation"]) for r in ends) == [
        ("t-0", "successful", "payment"), ("t-1", "successful", "payment"),
    ]  # fmt: skip
    assert all(r["requests"] >= 2 and r["request_id"] for r in ends)
    assert DEMO_SHOPS["361"] not in done.stderr
    assert CARD["number"] not in done.stderr


def test_debug_logs_each_request_in_plain_lines(tmp_path: Path):
    """`--log-level debug`: a `begateway_async.http` line per request, method, URL and status."""
    source = tmp_path / "jobs.jsonl"
    line = {"operation": "payment", "amount": 150, "currency": "USD", "description": "x",
            "credit_card": CARD}  # fmt: skip
    source.write_text(json.dumps(line) + "\n")
    with spawn(QUICK) as url:
        done = subprocess.run(  # noqa: S603
            [*COMMAND, "run", str(source), "--out", str(tmp_path / "out.jsonl"),
             "--log-level", "DEBUG"],
            capture_output=True, text=True, env=shop_env(url), timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    requests = [line for line in done.stderr.splitlines() if " begateway_async.http: " in line]
    assert f"DEBUG begateway_async.http: POST {url}/async/transactions/payments 200 " in requests[0]
    assert any(" GET " in line and " request_id=" in line for line in requests[1:])


def test_the_demo_prints_its_spans_with_otel_console():
    """`demo --otel console`: the jobs' spans as JSON on stdout, the requests their children."""
    done = subprocess.run(  # noqa: S603
        [*COMMAND, "demo", "--flows", "6", "--otel", "console"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    spans = json_objects(done.stdout)
    jobs = [s for s in spans if s.get("kind") == "SpanKind.INTERNAL"]
    assert jobs
    assert all(s["name"].startswith("begateway ") for s in jobs)
    ids = {s["context"]["span_id"] for s in jobs}
    requests = [s for s in spans if s.get("kind") == "SpanKind.CLIENT"]
    assert requests
    assert all(s["parent_id"] in ids for s in requests)  # every request under its job
    assert any("resource_metrics" in s for s in spans)  # and the metrics, at the end
