"""The one entry point for lint, typing and tests (CI and the README use the same commands)."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typing", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
#: Every Python the package claims (``requires-python`` and the classifiers).
PYTHONS = ["3.11", "3.12", "3.13"]

# Interpreters installed by pyenv are found even when they are not its global ones.
_versions = Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser() / "versions"
_found = [
    str(path / "bin")
    for version in PYTHONS
    for path in sorted(_versions.glob(f"{version}.*"))
    if (path / "bin" / f"python{version}").exists()
]
os.environ["PATH"] = os.pathsep.join([*_found, os.environ.get("PATH", "")])


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff: lint rules and formatting."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", "src", "tests", "benchmarks", "examples", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "examples", "noxfile.py")


@nox.session(python=PYTHON)
def typing(session: nox.Session) -> None:
    """Mypy --strict on the package and on the typing examples."""
    session.install("-e", ".[tests]", "mypy>=1.13")
    session.run("mypy")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite, on asyncio and trio, on every Python the package claims."""
    session.install("-e", ".[tests]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """The fault suites, long: thousands of jobs (also with notifications), twenty SIGKILLs.

    Also three hosts on one PostgreSQL journal working 3 000 lines, one of them SIGKILLed.

    Also the property tests with 20 000 inputs each (their counts in the statistics).
    """
    session.install("-e", ".[tests]")
    session.env["BEGATEWAY_SOAK"] = "1"
    session.env.setdefault("BEGATEWAY_FAULT_REPORT", "fault-report.json")
    session.run(
        "python",
        "-m",
        "pytest",
        "-n",
        "0",  # one process: the tests add their figures to one report file
        "tests/integration/test_fault_suite.py",
        "tests/integration/test_loopback.py::test_batch_runner_killed_again_and_again_pays_each_line_once",
        "tests/integration/test_shared_batch.py",
        "tests/integration/test_webhook_races.py::test_every_fault_at_once_with_notifications_still_ends_each_job_once",
        "tests/test_properties.py",
        "--hypothesis-show-statistics",
        "-s",  # the figures each prints
        *session.posargs,
    )


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The demo against the simulator (the README's first command)."""
    session.install("-e", ".[simulator]")
    session.run("python", "-m", "begateway_async", "demo", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Micro, load and memory benchmarks (``nox -s bench -- --quick`` for a smoke run)."""
    session.install("-e", ".[bench]")
    # The scripts run and write their files (also what catches a broken script early).
    session.run("python", "-m", "pytest", "benchmarks/test_smoke.py", "-n", "0")
    session.run(
        "python",
        "-m",
        "pytest",
        "benchmarks/test_micro.py",
        "--benchmark-json",
        "benchmarks/results/micro.json",
        "-n",
        "0",  # pytest-benchmark measures nothing under xdist
    )
    session.run("python", "benchmarks/load.py", *session.posargs)
    session.run("python", "benchmarks/memory.py", *session.posargs)
    session.run("python", "benchmarks/hostile.py")
    session.run("python", "benchmarks/shared_journal.py")
    session.run("python", "benchmarks/observe.py")
