"""The client against the simulator under a real server on loopback, and the command line."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from tripwire import Tripwire

import begateway_async as bga
from begateway_async.testing import (
    DEMO_SHOPS,
    Fault,
    Faults,
    Fixed,
    LogNormal,
    Simulator,
    serve,
    spawn,
)
from fakes import card, payment

pytestmark = pytest.mark.anyio

SECRET = DEMO_SHOPS["361"]
FAST = bga.PollPolicy(first_delay=0.05, max_delay=0.2)


@pytest.fixture(scope="module")
def loopback():
    """One simulator served by uvicorn on 127.0.0.1 for this module's tests."""
    simulator = Simulator(processing=Fixed(0.1))
    with serve(simulator) as url:
        yield simulator, url


async def test_operations_over_loopback(loopback):
    """Payments, refunds, authorizations and queries work over real sockets."""
    _, url = loopback
    tracking_id = f"lb-{uuid.uuid4()}"  # the simulator is shared by both backends' runs
    fields = {
        "currency": "USD",
        "description": "x",
        "credit_card": card(),
        "duplicate_check": False,
    }
    async with bga.Gateway(url, 361, SECRET, poll=FAST) as gw:
        paid = await gw.payment(bga.Payment(amount=901, tracking_id=tracking_id, **fields))
        refund = await gw.refund(bga.Refund(parent_uid=paid.uid, amount=901, reason="r"))
        held = await gw.authorization(bga.Authorization(amount=902, **fields))
        voided = await gw.void(bga.Void(parent_uid=held.uid, amount=902))
        found = await gw.transactions_by_tracking_id(tracking_id)
    assert (paid.status, refund.status, voided.status) == ("successful",) * 3
    assert [tx.uid for tx in found] == [paid.uid]
    assert paid.receipt_url is not None
    assert paid.receipt_url.startswith(url)


async def test_drops_and_truncation_over_loopback(loopback):
    """Dropped connections and truncated bodies from a real server are retried to the result."""
    simulator, url = loopback
    simulator.faults = Faults(
        drop=Fault(script=[True, True], on={"result"}),
        truncate=Fault(script=[True], on={"result"}),
    )
    try:
        async with bga.Gateway(url, 361, SECRET, poll=FAST) as gw:
            tx = await gw.payment(payment(903, tracking_id=None, duplicate_check=False))
    finally:
        counts = simulator.faults.counts()
        simulator.faults = Faults()
    assert tx.successful
    assert counts["drop"] == 2
    assert counts["truncate"] == 1


async def test_stats_over_http(loopback):
    """The counters are readable over HTTP."""
    simulator, url = loopback
    async with httpx.AsyncClient(base_url=url) as http:
        stats = (await http.get("/_simulator/stats")).json()
    assert stats["requests_total"] == sum(simulator.stats.requests.values())


def _cli(
    *arguments: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "begateway_async", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture(scope="module")
def spawned():
    """``begateway-async simulate`` in its own process, stopped with SIGINT afterwards."""
    with spawn(["--median", "0.05", "--p99", "0.2"]) as url:
        yield url


def test_batch_runner(spawned, tmp_path: Path):
    """`run` answers every line once, reports bad lines by number, exits 1 on a failure."""
    lines = [
        {
            "operation": "payment",
            "amount": 1001,
            "currency": "USD",
            "description": "a",
            "tracking_id": "b-1",
            "credit_card": {"number": "4200000000000000", "exp_month": 1, "exp_year": 2030},
        },
        {
            "operation": "payment",
            "amount": 1002,
            "currency": "USD",
            "description": "b",
            "credit_card": {"number": "4005550000000019", "exp_month": 1, "exp_year": 2030},
        },
        "not json",
        {"operation": "refund", "parent_uid": "missing", "amount": 5, "reason": "x"},
        {"operation": "teleport"},
        {"operation": "balance_query", "currency": "USD"},
    ]
    source = tmp_path / "jobs.jsonl"
    source.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n\n")
    out = tmp_path / "results.jsonl"
    env = {"BEGATEWAY_URL": spawned, "BEGATEWAY_SHOP_ID": "361", "BEGATEWAY_SECRET_KEY": SECRET}
    done = _cli("run", str(source), "--out", str(out), "--concurrency", "4", env=env)
    assert done.returncode == 1, done.stderr
    results = {r["line"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert sorted(results) == [1, 2, 3, 4, 5, 6]
    assert (results[1]["ok"], results[1]["status"]) == (True, "successful")
    assert (results[2]["ok"], results[2]["status"]) == (False, "failed")
    assert results[3]["error"] == "InvalidRequest"
    assert (results[4]["error"], results[4]["status_code"]) == ("JobRejected", 422)
    assert results[5]["error"] == "InvalidRequest"
    assert results[6]["ok"]
    assert "line 3:" in done.stderr
    assert "line 5:" in done.stderr
    assert SECRET not in done.stderr + done.stdout + out.read_text()
    before = out.read_text()
    again = _cli("run", str(source), "--out", str(out), env=env)
    assert again.returncode == 1, again.stderr  # resumed from the journal: the same failures
    assert out.read_text() == before  # every line was answered already: nothing added
    fresh = _cli("run", str(source), "--out", str(out), "--no-journal", env=env)
    assert fresh.returncode == 2
    assert "exists" in fresh.stderr


#: What card data in clear would look like in a file: the PAN, and the request's card fields.
CARD_DATA = (b"4200000000000000", b"verification_value", b'"exp_month"')


def _card_data_in(folder: Path) -> list[str]:
    """Every (file, card datum) pair found in clear in the files of ``folder``."""
    return [
        f"{file.name}: {datum.decode()}"
        for file in folder.iterdir()
        if file.name != "jobs.jsonl"  # the input itself, which the merchant wrote
        for datum in CARD_DATA
        if datum in file.read_bytes()
    ]


def _set_on_exit(process: subprocess.Popen[bytes], event: threading.Event) -> None:
    process.wait()
    event.set()


def test_batch_runner_killed_again_and_again_pays_each_line_once(tmp_path: Path):
    """SIGKILL at any moment, run the same command again: every line once, no payment twice.

    Every 20th line has an expired card: the gateway answers it once (a one-shot 422). A kill
    between that answer and its journal write loses it; the line must then say so.
    """
    count, kills = (2000, 20) if os.environ.get("BEGATEWAY_SOAK") == "1" else (80, 5)
    expired = {i for i in range(count) if i % 20 == 7}
    lines = [
        {
            "operation": "payment",
            "amount": 2000 + i,
            "currency": "USD",
            "description": f"order {i}",
            "tracking_id": f"kill-{i}",
            "credit_card": {
                "number": "4200000000000000",
                "exp_month": 1,
                "exp_year": 2010 if i in expired else 2030,
                "verification_value": "739",
            },
        }
        for i in range(count)
    ]
    source = tmp_path / "jobs.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "results.jsonl"
    simulator = Simulator(processing=LogNormal.from_percentiles(0.3, 1.5), seed=3)
    tripwire = Tripwire(simulator)
    with serve(tripwire) as url:
        env = {**os.environ, "BEGATEWAY_URL": url, "BEGATEWAY_SHOP_ID": "361"}
        env["BEGATEWAY_SECRET_KEY"] = SECRET
        command = [sys.executable, "-m", "begateway_async", "run", str(source), "--out", str(out)]
        command += ["--concurrency", "40"]
        killed = 0
        found: list[str] = []
        for k in range(kills):
            process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)  # noqa: S603
            # Kill it at a different point each time: once k+1 fifths of the results are out.
            tripwire.arm((k + 1) * count // (kills + 1))
            ended = threading.Thread(target=_set_on_exit, args=(process, tripwire.tripped))
            ended.start()
            tripwire.tripped.wait(timeout=60)  # that many served, or the run is over
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                killed += 1
            process.wait()
            ended.join()
            found += _card_data_in(tmp_path)  # what a killed run left on disk
        done = subprocess.run(command, env=env, timeout=120, check=False)  # noqa: S603
        stats = simulator.stats
    assert done.returncode == 1  # the expired cards failed
    answered = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["line"] for r in answered) == list(range(1, count + 1))  # each exactly once
    good = [r for r in answered if r["line"] - 1 not in expired]
    assert all(r["ok"] and r["status"] == "successful" for r in good)
    one_shot = [r for r in answered if r["line"] - 1 in expired]
    served = [r for r in one_shot if r["error"] == "JobRejected" and r["status_code"] == 422]
    lost = [r for r in one_shot if r["error"] == "JobLost"]
    assert len(served) + len(lost) == len(expired)  # nothing else became of them
    assert all(r["after_lost_reply"] for r in lost)  # every lost reply is reported as such
    assert killed >= 3  # most runs were cut short
    assert stats.transactions == count - len(expired)  # no payment made twice
    assert found == []  # no card number, CVV or expiry in clear in any file, ever
    for file in tmp_path.iterdir():
        if file.name.startswith("results.jsonl"):  # the output and its journal
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name
    report = os.environ.get("BEGATEWAY_FAULT_REPORT")
    if report:
        figures = json.loads(Path(report).read_text()) if Path(report).exists() else {}
        figures["sigkill_batch"] = {
            "lines": count,
            "kills": killed,
            "submits": stats.requests["submit"],
            "resent_same_request_id": stats.replays,
            "transactions": stats.transactions,
            "lines_answered": len(answered),
            "duplicate_payments": stats.transactions - (count - len(expired)),
            "one_shot_errors": len(expired),
            "one_shot_served": len(served),
            "one_shot_lost_in_a_crash_reported_as_lost_reply": len(lost),
            "card_data_in_clear_on_disk": len(found),
        }
        Path(report).write_text(json.dumps(figures, indent=1))
        print("sigkill batch:", json.dumps(figures["sigkill_batch"]))  # noqa: T201


def test_batch_runner_needs_credentials(tmp_path: Path):
    """Without a gateway URL, shop id or secret the runner says which, and exits 2."""
    source = tmp_path / "jobs.jsonl"
    source.write_text("{}\n")
    env = {"BEGATEWAY_URL": "", "BEGATEWAY_SHOP_ID": "", "BEGATEWAY_SECRET_KEY": ""}
    done = _cli("run", str(source), "--out", str(tmp_path / "o.jsonl"), env=env)
    assert done.returncode == 2
    assert "BEGATEWAY_URL" in done.stderr


def test_demo_smoke():
    """The demo runs a small mix end to end and prints its summary table."""
    done = _cli("demo", "--flows", "40", "--median", "0.05", "--p99", "0.3")
    assert done.returncode == 0, done.stderr
    assert "HTTP requests per job" in done.stdout
    assert "authorization + capture" in done.stdout
    # The 3-D Secure payments end by the simulator's notification, not by a status query.
    followed = re.search(
        r"3-D Secure followed to a final status\s+(\d+) \((\d+) notifications: (\d+) woke a "
        r"follow, (\d+) ended a job; (\d+) status queries\)",
        done.stdout,
    )
    assert followed is not None, done.stdout
    count, received, woke, ended, queries = map(int, followed.groups())
    assert count >= 1
    assert received == woke + ended  # each notification ended a job or woke a follow
    assert woke == count
    assert queries == 0


async def test_simulate_command_serves(spawned):
    """`simulate` serves the gateway: an unauthenticated submit gets the documented 401."""
    async with httpx.AsyncClient(base_url=spawned) as http:
        answer = await http.post("/async/transactions/payments", json={"request": {}})
    assert answer.status_code == 401
    assert answer.json() == {"message": "Invalid shop_id/secret_key."}


def test_simulate_stops_cleanly_on_ctrl_c():
    """`simulate` prints where it listens, serves, and exits 0 on SIGINT."""
    process = subprocess.Popen(
        [sys.executable, "-m", "begateway_async", "simulate", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("begateway-async simulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        assert httpx.get(f"{url}/_simulator/stats", timeout=10).status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_batch_runner_settles_an_unanswered_submit_on_the_next_run(tmp_path: Path):
    """A submit with no answer after every send is left unanswered, then settled by a rerun."""
    lines = [
        {
            "operation": "payment",
            "amount": 3000 + i,
            "currency": "USD",
            "description": f"order {i}",
            "tracking_id": f"settle-{i}",
            "credit_card": {"number": "4200000000000000", "exp_month": 1, "exp_year": 2030},
        }
        for i in range(3)
    ]
    source = tmp_path / "jobs.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "results.jsonl"
    # The first three acknowledgements are garbled: line 1 (sent alone first) gets no answer.
    faults = Faults(truncate=Fault(script=[True, True, True], on={"submit"}))
    simulator = Simulator(processing=Fixed(0.05), faults=faults)
    with serve(simulator) as url:
        env = {"BEGATEWAY_URL": url, "BEGATEWAY_SHOP_ID": "361", "BEGATEWAY_SECRET_KEY": SECRET}
        first = _cli("run", str(source), "--out", str(out), "--concurrency", "1", env=env)
        assert first.returncode == 1
        assert "line 1: no answer" in first.stderr
        assert sorted(json.loads(x)["line"] for x in out.read_text().splitlines()) == [2, 3]
        second = _cli("run", str(source), "--out", str(out), env=env)
        stats = simulator.stats
    assert second.returncode == 0, second.stderr
    answered = {json.loads(x)["line"]: json.loads(x) for x in out.read_text().splitlines()}
    assert sorted(answered) == [1, 2, 3]
    assert answered[1]["ok"]
    assert stats.transactions == 3  # line 1 was made once, by its first send
    assert stats.replays == 3  # its two re-sends in run 1 and the one in run 2
