"""Three hosts run one input on one PostgreSQL journal; one is SIGKILLed; the others take over.

Each host writes its own output; the merge gives one line per input line.
The simulator counts the transactions per tracking id: none may be made
twice. The test waits on the simulator's count (an event), never on a sleep.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from tripwire import Tripwire

from begateway_async.testing import DEMO_SHOPS, LogNormal, Simulator, serve

SECRET = DEMO_SHOPS["361"]
HOSTS = 3


def database(dsn: str) -> str:
    """A fresh database on the test cluster (its own journal schema)."""
    name = f"batch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    return dsn.rsplit("/", 1)[0] + f"/{name}"


def answered_in(outputs: list[str]) -> list[int]:
    """The input lines the hosts' own outputs answer (a killed host's last line may be cut)."""
    return [
        json.loads(line)["line"]
        for path in outputs
        if Path(path).exists()
        for line in Path(path).read_text().splitlines()
        if line.endswith("}")
    ]


def taken_over(journal: str) -> set[int]:
    """The input lines whose entries were claimed again (their tags are ``<print>:<line>``)."""
    with psycopg.connect(journal, autocommit=True) as c:
        tags = c.execute("SELECT tag FROM begateway.entries WHERE epoch > 1").fetchall()
    return {int(tag.rsplit(":", 1)[1]) for (tag,) in tags}


def start_hosts(
    base: list[str], env: dict[str, str], tmp_path: Path, tripwire: Tripwire
) -> list[subprocess.Popen[bytes]]:
    """The hosts, each with its own output and stderr file; the first at work before the others.

    On a busy machine the host to kill could otherwise still be starting when
    the others have served a quarter of the results, and hold nothing.
    """
    hosts = []
    for i in range(HOSTS):
        command = [*base, "--out", str(tmp_path / f"host{i}.jsonl"), "--lease", "3"]
        command += ["--concurrency", "60"]
        with (tmp_path / f"host{i}.err").open("wb") as errors:
            hosts.append(subprocess.Popen(command, env=env, stderr=errors))  # noqa: S603
        if i == 0:
            tripwire.arm(1)  # an answer served: it is at work
            assert tripwire.tripped.wait(timeout=120)
    return hosts


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_three_hosts_one_killed_every_line_once_nothing_paid_twice(
    tmp_path: Path, pg_dsn: str, backend: str
):
    count = 3000 if os.environ.get("BEGATEWAY_SOAK") == "1" else 1000
    source = tmp_path / "jobs.jsonl"
    card = {"number": "4200000000000000", "exp_month": 1, "exp_year": 2030,
            "verification_value": "739"}  # fmt: skip
    rows = [
        {"operation": "payment", "amount": 100 + i, "currency": "USD",
         "description": f"order {i}", "tracking_id": f"host-{i}", "credit_card": card}
        for i in range(count)
    ]  # fmt: skip
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    journal = database(pg_dsn)
    simulator = Simulator(processing=LogNormal.from_percentiles(0.2, 1.0), seed=11)
    tripwire = Tripwire(simulator)
    with serve(tripwire) as url:
        env = {**os.environ, "BEGATEWAY_URL": url, "BEGATEWAY_SHOP_ID": "361",
               "BEGATEWAY_SECRET_KEY": SECRET}  # fmt: skip
        base = [sys.executable, "-m", "begateway_async", "run", str(source), "--journal", journal,
                "--backend", backend]  # fmt: skip
        hosts = start_hosts(base, env, tmp_path, tripwire)
        tripwire.arm(count // 4)  # a quarter of the results served: kill the first host
        assert tripwire.tripped.wait(timeout=120)
        hosts[0].send_signal(signal.SIGKILL)
        survivors = [host.wait(timeout=300) for host in hosts[1:]]
        hosts[0].wait()
        stderr = {i: (tmp_path / f"host{i}.err").read_text()[-2000:] for i in range(HOSTS)}
        outputs = [str(tmp_path / f"host{i}.jsonl") for i in range(HOSTS)]
        merged = tmp_path / "all.jsonl"
        merge = subprocess.run(  # noqa: S603
            [*base, "--out", str(merged), "--merge", *outputs],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        per_tracking_id = collections.Counter(
            record.tracking_id
            for record in simulator.ledger.transactions.values()
            if record.type == "payment"
        )
    assert hosts[0].returncode == -signal.SIGKILL
    assert survivors == [0, 0], (survivors, stderr)
    assert merge.returncode == 0, merge.stderr
    # Nothing paid twice, nothing lost: one payment per line.
    assert set(per_tracking_id.values()) == {1}
    assert len(per_tracking_id) == count
    # Every line answered once in the merge, and in at most one host's output.
    answered = [json.loads(line) for line in merged.read_text().splitlines()]
    assert sorted(r["line"] for r in answered) == list(range(1, count + 1))
    assert all(r["ok"] and r["status"] == "successful" for r in answered)
    written = collections.Counter(answered_in(outputs))
    assert max(written.values()) == 1
    # What a survivor took over, a survivor answered (unless the killed host had done so first).
    taken, by_survivors = taken_over(journal), set(answered_in(outputs[1:]))
    assert taken, ("the killed host left nothing to take over", stderr)
    by_killed = set(written) - by_survivors
    assert taken <= by_survivors | by_killed, taken - set(written)  # not only from the journal
    assert taken & by_survivors
    answered_by = [
        len(Path(path).read_text().splitlines()) if Path(path).exists() else 0 for path in outputs
    ]
    assert all(n > 0 for n in answered_by[1:])  # the survivors worked the input together
    report = os.environ.get("BEGATEWAY_FAULT_REPORT")
    if report:
        figures = json.loads(Path(report).read_text()) if Path(report).exists() else {}
        figures[f"shared_journal_batch_{backend}"] = {
            "lines": count,
            "hosts": HOSTS,
            "killed": 1,
            "lines_per_host_output": answered_by,
            "lines_from_the_journal_in_the_merge": count - sum(written.values()),
            "payments": sum(per_tracking_id.values()),
            "paid_twice": sum(1 for n in per_tracking_id.values() if n > 1),
            "resent_same_request_id": simulator.stats.replays,
        }
        Path(report).write_text(json.dumps(figures, indent=1))
        figure = json.dumps(figures[f"shared_journal_batch_{backend}"])
        print("shared journal batch:", backend, figure)  # noqa: T201
