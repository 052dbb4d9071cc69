"""The benchmark scripts run and write their files (``nox -s bench``; they assert no timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, *arguments: str) -> None:
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "benchmarks" / script), *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_quick_load_benchmark_writes_its_results(tmp_path: Path):
    """`load.py --quick` runs each quick contender to completion and writes JSON and markdown."""
    _run(
        "load.py",
        "--quick",
        "--sizes",
        "30",
        "--median",
        "0.05",
        "--p99",
        "0.3",
        "--out",
        str(tmp_path),
    )
    result = json.loads((tmp_path / "quick.json").read_text())
    contenders = {row["contender"] for row in result["rows"]}
    assert contenders == {"ours", "naive", "oracle", "floor"}
    assert all(row["completed"] == 30 for row in result["rows"])
    assert all(row["errors"] == 0 for row in result["rows"])
    (notified,) = [row for row in result["rows"] if row["options"].get("webhooks")]
    assert notified["notifications"] == {"200": 30}  # every job was notified, once
    assert "| contender |" in (tmp_path / "quick.md").read_text()


def test_memory_benchmark_writes_its_results(tmp_path: Path):
    """`memory.py` keeps every submitted job pending and reports both measures."""
    _run("memory.py", "--n", "50", "--traced-n", "50", "--http", "httpx", "--out", str(tmp_path))
    (row,) = json.loads((tmp_path / "memory.json").read_text())["rows"]
    assert row["pending"] == 50 + 1_000  # the warm-up jobs are pending too
    assert row["traced_bytes_per_job"] > 0
    assert row["sites"]


def test_shared_journal_benchmark_writes_its_results(tmp_path: Path):
    """`shared_journal.py` runs 1, 2 and 4 workers on one PostgreSQL and measures wake-ups."""
    _run("shared_journal.py", "--jobs", "40", "--wakeups", "5", "--out", str(tmp_path))
    result = json.loads((tmp_path / "shared_journal.json").read_text())
    assert [row["workers"] for row in result["throughput"]] == [1, 2, 4]
    assert all(row["jobs"] == 40 for row in result["throughput"])
    assert all(row["journal_round_trips_per_job"] >= 3 for row in result["throughput"])
    assert result["wakeup"]["rounds"] == 5
    assert result["wakeup"]["polls_by_the_awaiting_worker"] == 0


def test_observability_benchmark_writes_its_results(tmp_path: Path):
    """`observe.py` runs every condition and measures the unused reports directly."""
    _run("observe.py", "--jobs", "100", "--rounds", "1", "--out", str(tmp_path))
    result = json.loads((tmp_path / "observe.json").read_text())
    assert [row["condition"] for row in result["rows"]] == ["off", "unused", "hook", "logs", "sdk"]
    assert result["unused_reports_us_per_job"] > 0
