"""The batch runner's closing lines: what became of every input line, counted from the output."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ._runfiles import SUBMIT_REFUSALS, records

__all__ = ["kind_of", "summary"]

#: The errors that mean the gateway refused what the line asked (nothing was made).
_REFUSALS = SUBMIT_REFUSALS | {"JobRejected", "InvalidRequest"}
#: The order the kinds are shown in.
_KINDS = ("successful", "declined", "rejected", "failed", "other")


def kind_of(record: dict[str, Any]) -> str:
    """What one output line says: successful, declined, rejected, failed, or other."""
    error = record.get("error")
    if error is not None:
        return "rejected" if error in _REFUSALS else "failed"
    status = record.get("status")
    if status == "successful":
        return "successful"
    if status == "failed":
        return "declined"
    return "failed" if status in ("expired", "error") else "other"


def summary(path: Path, *, total: int | None) -> str:
    """One line: how many input lines the output at ``path`` answers, by kind, and where it is.

    Counted from the file itself (the last answer of each line: a resumed or
    ``--retry-rejected`` run appends or replaces), so the figures are the file's.
    """
    last: dict[int, dict[str, Any]] = {}
    if path.exists():
        for record in records(path.read_bytes()):
            last[record["line"]] = record
    kinds = Counter(kind_of(record) for record in last.values())
    shown = ", ".join(f"{kinds[kind]} {kind}" for kind in _KINDS if kinds[kind] or kind != "other")
    of = f" of {total}" if total is not None else ""
    return f"{len(last)}{of} lines answered: {shown}; in {path}"
