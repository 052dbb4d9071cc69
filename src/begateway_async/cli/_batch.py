"""``begateway-async run jobs.jsonl --out results.jsonl``: the batch runner.

Input: one JSON object per line, ``{"operation": "...", <the request's fields>}``
(see `request_from_mapping`); blank lines are skipped. Output: one JSON line
per input line, written as each job finishes, carrying the input ``line``
number. A bad line is reported on stderr with its number and answered in the
output with ``"error": "InvalidRequest"``, never silently dropped. The
output is the gateway's answer without card data (no number, CVV or expiry;
the last four digits, the brand and the token stay), in a file only its owner
may read.

Exit status: 0 when every line gave a transaction that did not fail; 1 when
any line was bad, any job ended with an error, any transaction's status is
``failed``, or a submit got no answer (with a journal such a line is left
unanswered and the next run of the same command settles it); 2 for a usage
error (missing credentials, output exists).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import anyio
import attrs

from begateway_async import (
    Balance,
    Gateway,
    GatewayError,
    InvalidRequest,
    Job,
    JobError,
    JobFailed,
    MemoryJournal,
    RequestRejected,
    SubmitIndeterminate,
    Transaction,
)

from ._console import Progress
from ._input import request_from_mapping

__all__ = ["run_batch"]

_FAILED_STATUSES = frozenset({"failed", "expired", "error"})


class _UsageError(Exception):
    pass


def _setting(value: str | None, variable: str, what: str) -> str:
    chosen = value or os.environ.get(variable)
    if not chosen:
        raise _UsageError(f"give {what} with its flag or the {variable} environment variable")
    return chosen


def _secret(args: argparse.Namespace) -> str:
    if args.secret_key_file:
        try:
            secret = Path(args.secret_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise _UsageError(f"cannot read the secret key file: {exc.strerror}") from None
        if not secret:
            raise _UsageError("the secret key file is empty")
        return secret
    return _setting(None, "BEGATEWAY_SECRET_KEY", "the secret key (--secret-key-file)")


def _lines(stream: IO[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield number, line


#: Card data that never goes into an output line, wherever the answer holds it.
_CARD_DATA = frozenset({"number", "verification_value", "exp_month", "exp_year"})


def _redacted(data: Any) -> Any:
    """An answer without card data: no number, CVV or expiry (last 4, brand, token stay)."""
    if isinstance(data, dict):
        return {k: _redacted(v) for k, v in data.items() if k not in _CARD_DATA}
    if isinstance(data, list):
        return [_redacted(v) for v in data]
    return data


def _result_fields(value: Any) -> dict[str, Any]:
    if isinstance(value, Transaction):
        return {"status": str(value.status), "uid": value.uid, "result": _redacted(value.raw)}
    if isinstance(value, Balance):
        return {"status": value.status, "result": _redacted(value.raw)}
    if isinstance(value, list):
        return {"status": "successful", "result": [_redacted(tx.raw) for tx in value]}
    return {"result": value}  # pragma: no cover - every operation returns one of the above


def _error_fields(exc: GatewayError) -> dict[str, Any]:
    fields: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, RequestRejected | JobFailed):
        fields["status_code"] = exc.status_code
        fields["body"] = exc.body
    if isinstance(exc, JobError):
        fields["request_id"] = exc.request_id
    if isinstance(exc, SubmitIndeterminate):
        fields["idempotency_key"] = exc.idempotency_key
    return fields


class _Batch:
    def __init__(
        self, gw: Gateway, out: IO[str], progress: Progress, timeout: float | None
    ) -> None:
        self.gw = gw
        self.out = out
        self.progress = progress
        self.timeout = timeout
        self.failures = 0
        self.undetermined = 0
        self.settle_later = not isinstance(gw.journal, MemoryJournal)  # a journal that lasts

    def write(self, record: dict[str, Any], *, failed: bool) -> None:
        self.out.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        self.out.flush()
        self.failures += failed
        self.progress.advance(failed=failed)

    def bad_line(self, number: int, reason: str) -> None:
        print(f"line {number}: {reason}", file=sys.stderr)  # noqa: T201
        self.write(
            {"line": number, "ok": False, "error": "InvalidRequest", "message": reason}, failed=True
        )

    async def one(self, number: int, data: dict[str, Any], semaphore: anyio.Semaphore) -> None:
        try:
            record: dict[str, Any] = {
                "line": number,
                "operation": data.get("operation"),
                "tracking_id": data.get("tracking_id"),
            }
            try:
                request = request_from_mapping(data)
                job = await self.gw.submit(request, tag=str(number))
            except InvalidRequest as exc:
                print(f"line {number}: {exc}", file=sys.stderr)  # noqa: T201
                self.write({**record, "ok": False, **_error_fields(exc)}, failed=True)
                return
            except SubmitIndeterminate as exc:
                if not self.settle_later:
                    self.write({**record, "ok": False, **_error_fields(exc)}, failed=True)
                    return
                # Not answered yet: the journal keeps the intent, and the next
                # run re-sends it with its RequestID and writes the real outcome.
                self.undetermined += 1
                print(  # noqa: T201
                    f"line {number}: no answer after {exc.attempts} sends "
                    f"(RequestID {exc.idempotency_key}); run the same command again to settle it",
                    file=sys.stderr,
                )
                return
            except GatewayError as exc:
                self.write({**record, "ok": False, **_error_fields(exc)}, failed=True)
                return
            await self.finish(record, job)
        finally:
            semaphore.release()

    async def finish(self, record: dict[str, Any], job: Job[Any]) -> None:
        """Wait for ``job`` and write its line."""
        record["request_id"] = job.request_id
        try:
            value = await job.result(self.timeout)
        except GatewayError as exc:
            self.write({**record, "ok": False, **_error_fields(exc)}, failed=True)
            return
        fields = _result_fields(value)
        failed = fields.get("status") in _FAILED_STATUSES
        self.write({**record, "ok": not failed, **fields}, failed=failed)

    async def recover(self, answered: set[int]) -> set[int]:
        """Answer what the journal holds for lines not answered yet; return the lines it holds.

        Unfinished submits are resumed (`Gateway.resume_all`: polled, or re-sent
        with their own RequestID); finished ones are written from the journal.
        A line the journal holds is never submitted again.
        """
        gw = self.gw
        entries = await gw.journal.entries(gw.base_url, gw.shop_id)
        held = {int(e.tag) for e in entries if e.tag and e.tag.isdigit()}
        resumed = {job.tag: job for job in await gw.resume_all()}
        async with anyio.create_task_group() as tg:
            for entry in entries:
                if not entry.tag or not entry.tag.isdigit() or int(entry.tag) in answered:
                    continue
                record: dict[str, Any] = {
                    "line": int(entry.tag),
                    "operation": entry.operation,
                    "tracking_id": entry.tracking_id,
                }
                job = resumed.get(entry.tag) or gw.replay(entry)
                if job is not None:
                    tg.start_soon(self.finish, record, job)
                elif entry.outcome is not None:
                    record["error"] = entry.outcome.error or "TransportError"
                    record["message"] = entry.outcome.message
                    self.write({**record, "ok": False}, failed=True)
        return held

    async def run(self, stream: IO[str], concurrency: int, skip: set[int]) -> None:
        semaphore = anyio.Semaphore(concurrency)
        async with anyio.create_task_group() as tg:
            for number, line in _lines(stream):
                if number in skip:
                    continue
                try:
                    data = json.loads(line)
                except ValueError as exc:
                    self.bad_line(number, f"not JSON: {exc}")
                    continue
                if not isinstance(data, dict):
                    self.bad_line(number, f"must be a JSON object, not {type(data).__name__}")
                    continue
                await semaphore.acquire()
                tg.start_soon(self.one, number, data, semaphore)


def _count_lines(path: str) -> int | None:
    if path == "-":
        return None
    with Path(path).open(encoding="utf-8") as stream:
        return sum(1 for line in stream if line.strip())


@attrs.frozen
class _Options:
    gateway: str
    shop_id: str
    secret: str = attrs.field(repr=False)
    total: int | None
    timeout: float | None
    concurrency: int
    journal: str | None
    earlier_failures: bool


async def _main(options: _Options, source: IO[str], out: IO[str], answered: set[int]) -> int:
    progress = Progress(options.total, "jobs")
    progress.done += len(answered)  # answered by an earlier run
    try:
        async with Gateway(
            options.gateway, options.shop_id, options.secret, journal=options.journal
        ) as gw:
            batch = _Batch(gw, out, progress, options.timeout)
            held = await batch.recover(answered)
            await batch.run(source, options.concurrency, answered | held)
    finally:
        progress.close()
    return 1 if batch.failures or batch.undetermined or options.earlier_failures else 0


def _answered(path: Path) -> tuple[set[int], bool]:
    """The input lines an earlier run answered in ``path``, and whether any failed.

    A last line cut short (the process was killed while writing it) is cut
    off the file: its job is answered again from the journal.
    """
    answered: set[int] = set()
    failed = False
    if not path.exists():
        return answered, failed
    with path.open("r+b") as stream:
        content = stream.read()
        complete = content.rfind(b"\n") + 1
        if complete < len(content):
            stream.truncate(complete)
    for line in content[:complete].splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("line"), int):
            answered.add(record["line"])
            failed |= record.get("ok") is False
    return answered, failed


def _private_output(path: Path, *, append: bool) -> IO[str]:
    """The output file, readable by its owner only (it holds what the gateway answered)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)  # also when an earlier run made it with wider permissions
    return os.fdopen(fd, "w", encoding="utf-8")


def _journal_path(args: argparse.Namespace) -> Path | None:
    if args.no_journal:
        return None
    return Path(args.journal) if args.journal else Path(args.out + ".journal")


def _check_paths(args: argparse.Namespace, journal: Path | None) -> bool:
    """Check the files; return whether this run resumes an earlier one."""
    out = Path(args.out)
    resuming = journal is not None and journal.exists() and not args.force
    if out.exists() and out.stat().st_size > 0 and not args.force and not resuming:
        raise _UsageError(f"{args.out} exists and is not empty; pass --force to overwrite it")
    if args.force and journal is not None:
        for stale in (journal, Path(f"{journal}-wal"), Path(f"{journal}-shm")):
            stale.unlink(missing_ok=True)
    if args.input != "-" and not Path(args.input).is_file():
        raise _UsageError(f"no such input file: {args.input}")
    return resuming


def run_batch(args: argparse.Namespace) -> int:
    """Run ``begateway-async run``; return the exit status."""
    try:
        gateway = _setting(args.gateway, "BEGATEWAY_URL", "the gateway URL (--gateway)")
        shop_id = _setting(args.shop_id, "BEGATEWAY_SHOP_ID", "the shop id (--shop-id)")
        secret = _secret(args)
        journal = _journal_path(args)
        resuming = _check_paths(args, journal)
    except _UsageError as exc:
        print(f"begateway-async run: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    answered, earlier_failures = _answered(Path(args.out)) if resuming else (set(), False)
    options = _Options(
        gateway=gateway,
        shop_id=shop_id,
        secret=secret,
        total=_count_lines(args.input),
        timeout=args.timeout,
        concurrency=max(1, args.concurrency),
        journal=str(journal) if journal is not None else None,
        earlier_failures=earlier_failures,
    )
    with contextlib.ExitStack() as stack:
        source = (
            sys.stdin
            if args.input == "-"
            else stack.enter_context(Path(args.input).open(encoding="utf-8"))
        )
        mode = "a" if resuming else "w"
        out = stack.enter_context(_private_output(Path(args.out), append=mode == "a"))
        try:
            return anyio.run(_main, options, source, out, answered)
        except InvalidRequest as exc:  # a bad gateway URL or shop id
            print(f"begateway-async run: {exc}", file=sys.stderr)  # noqa: T201
            return 2
