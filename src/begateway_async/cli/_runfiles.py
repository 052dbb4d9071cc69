"""The batch runner's files: the input (its lines, its fingerprint), the output, the journal.

The journal is bound to its input: each entry's tag is ``<fingerprint>:<line>``,
the fingerprint being the first 16 hex digits of the input's SHA-256. A run
with another input and the same output is refused, never mixed in. Standard
input has no fingerprint to check (its tag prefix is ``stdin``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Final

__all__ = [
    "SUBMIT_REFUSALS",
    "UsageError",
    "answered",
    "check_paths",
    "count_lines",
    "drop_refused",
    "fingerprint",
    "journal_path",
    "line_key",
    "lines",
    "outputs",
    "private_output",
    "records",
    "tag",
    "untag",
]

#: The error names of a line whose submit the gateway refused (nothing was created):
#: SubmitRejected, and RequestRejected in the outputs of earlier versions.
SUBMIT_REFUSALS = frozenset({"SubmitRejected", "RequestRejected"})

STDIN: Final = "stdin"


class UsageError(Exception):
    """The command cannot run as given (exit status 2); the message says what to do."""


def fingerprint(path: str) -> str:
    """What binds a journal to its input: a hash of the input file (``stdin``: none)."""
    if path == "-":
        return STDIN
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def tag(print_: str, line: int) -> str:
    """The journal tag of input line ``line``."""
    return f"{print_}:{line}"


def untag(value: str | None) -> tuple[str | None, int] | None:
    """``(fingerprint, line)`` of a tag (fingerprint None: a tag of an earlier version)."""
    if not value:
        return None
    print_, _, number = value.rpartition(":")
    if not number.isdigit():
        return None
    return (print_ or None), int(number)


def lines(stream: IO[bytes]) -> Iterator[tuple[int, str | None]]:
    """The non-blank lines with their numbers; None for a line that is not UTF-8."""
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None


def count_lines(path: str) -> int | None:
    """How many non-blank lines the input has (None for standard input)."""
    if path == "-":
        return None
    with Path(path).open("rb") as stream:
        return sum(1 for raw in stream if raw.strip())


def answered(path: Path) -> tuple[set[int], int]:
    """The input lines an earlier run answered in ``path``, and how many of them failed.

    A last line cut short (the process was killed while writing it) is cut
    off the file: its job is answered again from the journal.
    """
    found: set[int] = set()
    failed = 0
    if not path.exists():
        return found, failed
    with path.open("r+b") as stream:
        content = stream.read()
        complete = content.rfind(b"\n") + 1
        if complete < len(content):
            stream.truncate(complete)
    for record in records(content[:complete]):
        found.add(record["line"])
        failed += record.get("ok") is False
    return found, failed


def outputs(paths: list[str]) -> dict[int, bytes]:
    """The first complete answer of each input line in the outputs of several hosts."""
    found: dict[int, bytes] = {}
    for path in paths:
        content = Path(path).read_bytes()
        for line in content[: content.rfind(b"\n") + 1].splitlines(keepends=True):
            for record in records(line):
                found.setdefault(record["line"], line)
    return found


def records(content: bytes) -> Iterator[dict[str, Any]]:
    """The output lines in ``content`` (a line that is not one of ours is passed over)."""
    for line in content.splitlines():
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict) and isinstance(record.get("line"), int):
            yield record


def drop_refused(path: Path, retryable: Callable[[int | None], bool]) -> set[int]:
    """Take the lines the gateway refused (`SubmitRejected`, ``retryable``) out of ``path``.

    Returns the lines taken out.

    The file is rewritten whole (in a private temporary file, then renamed):
    a crash leaves either the old file or the new one.
    """
    if not path.exists():
        return set()
    content = path.read_bytes()
    kept: list[bytes] = []
    dropped: set[int] = set()
    for line in content.splitlines(keepends=True):
        found = list(records(line))
        refused = found and found[0].get("error") in SUBMIT_REFUSALS
        if refused and retryable(found[0].get("status_code")):
            dropped.add(found[0]["line"])
        else:
            kept.append(line)
    if dropped:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as stream:  # mkstemp makes it 0600
            stream.write(b"".join(kept))
        Path(temporary).replace(path)
    return dropped


def private_output(path: Path, *, append: bool) -> IO[str]:
    """The output file, readable by its owner only (it holds what the gateway answered)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)  # also when an earlier run made it with wider permissions
    return os.fdopen(fd, "w", encoding="utf-8")


def journal_path(args: argparse.Namespace) -> Path | str | None:
    """The journal's file, or the shared journal's URL (None with ``--no-journal``)."""
    if args.no_journal:
        return None
    if args.journal and args.journal.startswith(("postgresql://", "postgres://")):
        return str(args.journal)
    return Path(args.journal) if args.journal else Path(args.out + ".journal")


def line_key(print_: str, line: int, attempt: int = 0) -> str:
    """The ``RequestID`` of input line ``line`` on a shared journal: one per line, any host.

    ``attempt``: how many of the line's submits were refused before anything
    was created (our credentials, say): the line is sent afresh with a new key.
    """
    name = f"begateway-async:run:{print_}:{line}" + (f":{attempt}" if attempt else "")
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def check_paths(args: argparse.Namespace, journal: Path | str | None) -> bool:
    """Check the files; return whether this run resumes an earlier one."""
    out = Path(args.out)
    if isinstance(journal, str):  # shared: this host's output is what it resumes
        if args.force:
            raise UsageError("--force cannot discard a shared journal; use another --out")
        if args.input == "-":
            raise UsageError("a shared journal needs an input file every host reads alike")
        if not Path(args.input).is_file():
            raise UsageError(f"no such input file: {args.input}")
        return out.exists()
    resuming = journal is not None and journal.exists() and not args.force
    if out.exists() and out.stat().st_size > 0 and not args.force and not resuming:
        raise UsageError(f"{args.out} exists and is not empty; pass --force to overwrite it")
    if args.force and journal is not None:
        for stale in (journal, Path(f"{journal}-wal"), Path(f"{journal}-shm")):
            stale.unlink(missing_ok=True)
    if args.input != "-" and not Path(args.input).is_file():
        raise UsageError(f"no such input file: {args.input}")
    return resuming
