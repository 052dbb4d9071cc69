"""``begateway-async run jobs.jsonl --out results.jsonl``: the batch runner.

Input: one JSON object per line, ``{"operation": "...", <the request's fields>}``
(see `request_from_mapping`); blank lines are skipped. Output: one JSON line
per input line, written as each job finishes, carrying the input ``line``
number. A bad line is reported on stderr with its number and answered in the
output with ``"error": "InvalidRequest"``, never silently dropped.

Exit status: 0 when every line gave a transaction that did not fail; 1 when
any line was bad, any job ended with an error, or any transaction's status is
``failed``; 2 for a usage error (missing credentials, output exists).
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

from ._client import Gateway
from ._console import Progress
from ._errors import GatewayError, InvalidRequest, JobError, SubmitIndeterminate, _BodyError
from ._input import request_from_mapping
from ._models import Balance, Transaction

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


def _result_fields(value: Any) -> dict[str, Any]:
    if isinstance(value, Transaction):
        return {"status": str(value.status), "uid": value.uid, "result": dict(value.raw)}
    if isinstance(value, Balance):
        return {"status": value.status, "result": dict(value.raw)}
    if isinstance(value, list):
        return {"status": "successful", "result": [dict(tx.raw) for tx in value]}
    return {"result": value}  # pragma: no cover - every operation returns one of the above


def _error_fields(exc: GatewayError) -> dict[str, Any]:
    fields: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, _BodyError):
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
                job = await self.gw.submit(request)
                record["request_id"] = job.request_id
                value = await job.result(self.timeout)
            except InvalidRequest as exc:
                print(f"line {number}: {exc}", file=sys.stderr)  # noqa: T201
                self.write({**record, "ok": False, **_error_fields(exc)}, failed=True)
                return
            except GatewayError as exc:
                self.write({**record, "ok": False, **_error_fields(exc)}, failed=True)
                return
            fields = _result_fields(value)
            failed = fields.get("status") in _FAILED_STATUSES
            self.write({**record, "ok": not failed, **fields}, failed=failed)
        finally:
            semaphore.release()

    async def run(self, stream: IO[str], concurrency: int) -> None:
        semaphore = anyio.Semaphore(concurrency)
        async with anyio.create_task_group() as tg:
            for number, line in _lines(stream):
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


async def _main(options: _Options, source: IO[str], out: IO[str]) -> int:
    progress = Progress(options.total, "jobs")
    try:
        async with Gateway(options.gateway, options.shop_id, options.secret) as gw:
            batch = _Batch(gw, out, progress, options.timeout)
            await batch.run(source, options.concurrency)
    finally:
        progress.close()
    return 1 if batch.failures else 0


def _check_paths(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if out.exists() and out.stat().st_size > 0 and not args.force:
        raise _UsageError(f"{args.out} exists and is not empty; pass --force to overwrite it")
    if args.input != "-" and not Path(args.input).is_file():
        raise _UsageError(f"no such input file: {args.input}")


def run_batch(args: argparse.Namespace) -> int:
    """Run ``begateway-async run``; return the exit status."""
    try:
        gateway = _setting(args.gateway, "BEGATEWAY_URL", "the gateway URL (--gateway)")
        shop_id = _setting(args.shop_id, "BEGATEWAY_SHOP_ID", "the shop id (--shop-id)")
        secret = _secret(args)
        _check_paths(args)
    except _UsageError as exc:
        print(f"begateway-async run: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    options = _Options(
        gateway=gateway,
        shop_id=shop_id,
        secret=secret,
        total=_count_lines(args.input),
        timeout=args.timeout,
        concurrency=max(1, args.concurrency),
    )
    with contextlib.ExitStack() as stack:
        source = (
            sys.stdin
            if args.input == "-"
            else stack.enter_context(Path(args.input).open(encoding="utf-8"))
        )
        out = stack.enter_context(Path(args.out).open("w", encoding="utf-8"))
        try:
            return anyio.run(_main, options, source, out)
        except InvalidRequest as exc:  # a bad gateway URL or shop id
            print(f"begateway-async run: {exc}", file=sys.stderr)  # noqa: T201
            return 2
