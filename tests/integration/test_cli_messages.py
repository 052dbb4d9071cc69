"""What the command line says when it stops early: one line, and the conventional exit status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from begateway_async.testing import DEMO_SHOPS, spawn

COMMAND = [sys.executable, "-m", "begateway_async"]


def _interrupt(process: subprocess.Popen[str]) -> tuple[int, str]:
    """Ctrl-C as a terminal sends it (to the whole process group); the status and stderr."""
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    return process.returncode, err


def _wait_for_a_submit(url: str) -> None:
    """Until the simulator at ``url`` has a task: the command is under way."""
    deadline = time.monotonic() + 60
    while not httpx.get(f"{url}/_simulator/jobs", timeout=10).json():
        assert time.monotonic() < deadline, "nothing was submitted"
        time.sleep(0.05)


def test_ctrl_c_in_the_demo_is_one_line_and_exit_130():
    process = subprocess.Popen(  # noqa: S603
        [*COMMAND, "demo", "--flows", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert process.stderr is not None
    started = process.stderr.readline()
    assert started.startswith("simulator started at ")
    _wait_for_a_submit(started.split()[3].rstrip(";"))
    status, err = _interrupt(process)
    assert status == 130
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "begateway-async demo: interrupted"


@pytest.mark.parametrize(
    ("options", "after"),
    [
        ([], "what was sent is in the journal: the same command resumes it"),
        (
            ["--backend", "trio", "--no-journal"],  # Trio wraps Ctrl-C in an exception group
            "without a journal, lines under way may have been sent: check them before a rerun",
        ),
    ],
    ids=["asyncio-journal", "trio-no-journal"],
)
def test_ctrl_c_in_a_batch_run_says_how_to_resume(tmp_path: Path, options, after):
    line = {
        "operation": "payment",
        "amount": 100,
        "currency": "USD",
        "description": "x",
        "credit_card": {"number": "4200000000000000", "exp_month": 1, "exp_year": 2030},
    }
    source = tmp_path / "jobs.jsonl"
    source.write_text(
        "".join(json.dumps({**line, "tracking_id": f"c-{i}"}) + "\n" for i in range(50))
    )
    with spawn(["--median", "30", "--p99", "60"]) as url:
        env = {**os.environ, "BEGATEWAY_URL": url, "BEGATEWAY_SHOP_ID": "361"}
        env["BEGATEWAY_SECRET_KEY"] = DEMO_SHOPS["361"]
        process = subprocess.Popen(  # noqa: S603
            [*COMMAND, "run", str(source), "--out", str(tmp_path / "out.jsonl"), *options],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            start_new_session=True,
        )  # fmt: skip
        _wait_for_a_submit(url)
        status, err = _interrupt(process)
    assert status == 130
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"begateway-async run: interrupted; {after}"


def test_a_missing_extra_is_one_line_naming_the_install():
    """Without uvicorn (the simulator extra), `simulate` says what to install, not a traceback."""
    script = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "from begateway_async.cli import main\n"
        "sys.exit(main(['simulate', '--port', '0']))\n"
    )
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "begateway-async simulate: needs the simulator extra "
        '(pip install "begateway-async[simulator]")'
    )


@pytest.mark.parametrize(
    "arguments", [["run"], ["run", "in.jsonl", "--out", "o", "--timeout", "-1"]]
)
def test_a_usage_error_exits_2(arguments):
    """A missing argument, or a timeout that is not seconds (checked before anything is sent)."""
    done = subprocess.run(  # noqa: S603
        [*COMMAND, *arguments], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


def test_a_batch_run_ends_with_a_summary_that_matches_its_output(tmp_path: Path):
    """Counted from the output file, also when the same command runs again (it resumes)."""
    card = {"number": "4200000000000000", "exp_month": 1, "exp_year": 2030}
    line = {"operation": "payment", "currency": "USD", "description": "x", "credit_card": card}
    lines = [
        {**line, "amount": 101, "tracking_id": "s-1"},  # successful
        {
            **line,
            "amount": 102,
            "tracking_id": "s-2",
            "credit_card": {**card, "number": "4005550000000019"},
        },
        {**line, "amount": 103, "tracking_id": "s-3", "credit_card": {**card, "exp_year": 2010}},
        {**line, "amount": 10.5, "tracking_id": "s-4"},  # refused here: not an integer
    ]
    source = tmp_path / "jobs.jsonl"
    source.write_text("".join(json.dumps(entry) + "\n" for entry in lines))
    out = tmp_path / "out.jsonl"
    with spawn(["--median", "0.05", "--p99", "0.2"]) as url:
        env = {**os.environ, "BEGATEWAY_URL": url, "BEGATEWAY_SHOP_ID": "361"}
        env["BEGATEWAY_SECRET_KEY"] = DEMO_SHOPS["361"]
        runs = [
            subprocess.run(  # noqa: S603
                [*COMMAND, "run", str(source), "--out", str(out)],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
            )
            for _ in range(2)
        ]
    written = [json.loads(text) for text in out.read_text().splitlines()]
    assert sorted(r["line"] for r in written) == [1, 2, 3, 4]  # each once, also after the resume
    expected = f"4 of 4 lines answered: 1 successful, 1 declined, 2 rejected, 0 failed; in {out}"
    first, again = (run.stderr.strip().splitlines() for run in runs)
    assert first[-1] == expected
    assert f"resuming: 4 lines already answered in {out}" in again
    assert first[-2] == "4/4 jobs, 3 not successful, " + first[-2].rsplit(", ", 1)[1]  # live
    assert again[-2] == "4/4 jobs (0 this run), 3 not successful, 0/s"  # the earlier run's
    assert again[-1] == expected
    assert [run.returncode for run in runs] == [1, 1]  # lines failed: the same status both times
