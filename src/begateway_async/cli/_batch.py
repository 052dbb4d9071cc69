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
error (missing credentials, output exists, another input's journal) and when
the gateway refused our credentials: the run stops at the first refusal and
sends nothing more, and the refused lines are sent by the next run. Lines the
gateway refused otherwise (nothing created) are sent again by a run with
``--retry-rejected``; a line is never paid twice either way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

import anyio
import attrs

from begateway_async import (
    DuplicateIntent,
    Gateway,
    GatewayError,
    InvalidRequest,
    Job,
    JobAbandoned,
    JournalEntry,
    JournalError,
    MemoryJournal,
    PostgresJournal,
    RequestRejected,
    SharedJournal,
    SubmitIndeterminate,
)

from ._answers import CREDENTIALS_REFUSED, error_fields, result_fields, retryable, unexpected
from ._console import Progress
from ._input import request_from_mapping
from ._runfiles import (
    UsageError,
    answered,
    check_paths,
    count_lines,
    drop_refused,
    fingerprint,
    journal_path,
    line_key,
    lines,
    private_output,
    tag,
    untag,
)
from ._summary import summary

__all__ = ["Options", "run_batch", "settings"]

_FAILED_STATUSES = frozenset({"failed", "expired", "error"})


def _setting(value: str | None, variable: str, what: str) -> str:
    chosen = value or os.environ.get(variable)
    if not chosen:
        raise UsageError(f"give {what} with its flag or the {variable} environment variable")
    return chosen


def _secret(args: argparse.Namespace) -> str:
    if args.secret_key_file:
        try:
            secret = Path(args.secret_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read the secret key file: {exc.strerror}") from None
        if not secret:
            raise UsageError("the secret key file is empty")
        return secret
    return _setting(None, "BEGATEWAY_SECRET_KEY", "the secret key (--secret-key-file)")


def settings(args: argparse.Namespace) -> tuple[str, str, str, Path | str | None]:
    """The gateway URL, shop id, secret key and journal the command line gives.

    Raises:
        UsageError: one is missing.
    """
    gateway = _setting(args.gateway, "BEGATEWAY_URL", "the gateway URL (--gateway)")
    shop_id = _setting(args.shop_id, "BEGATEWAY_SHOP_ID", "the shop id (--shop-id)")
    return gateway, shop_id, _secret(args), journal_path(args)


class Batch:
    def __init__(
        self, gw: Gateway, out: IO[str], progress: Progress, timeout: float | None, print_: str
    ) -> None:
        self.gw = gw
        self.out = out
        self.progress = progress
        self.timeout = timeout
        self.print_ = print_  # the input's fingerprint
        self.failures = 0
        self.undetermined = 0
        self.refused: RequestRejected | None = None  # our credentials, at the first refusal
        self.settle_later = not isinstance(gw.journal, MemoryJournal)  # a journal that lasts
        # Several hosts on one journal: a line's RequestID is the same on every host,
        # and a line another live host holds is its to answer.
        self.shared = isinstance(gw.journal, SharedJournal)
        self.elsewhere = 0
        #: Jobs this host took over from another (``Gateway(on_take_over=...)``): its to write.
        self.taken: list[Job[Any]] = []
        #: Lines written to this output; lines whose job here ended unsettled.
        self.written: set[int] = set()
        self.stuck: set[int] = set()
        #: Per line, its submits refused before anything was created (sent afresh).
        self.attempts: dict[int, int] = {}

    def write(self, record: dict[str, Any], *, failed: bool) -> None:
        self.written.add(record["line"])
        self.out.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        self.out.flush()
        self.failures += failed
        self.progress.advance(failed=failed)

    def bad_line(self, number: int, reason: str) -> None:
        print(f"line {number}: {reason}", file=sys.stderr)  # noqa: T201
        self.write(
            {"line": number, "ok": False, "error": "InvalidRequest", "message": reason}, failed=True
        )

    def unsettled(self, number: int, exc: GatewayError) -> None:
        """A line the journal keeps unfinished (abandoned, unreadable here): settled later."""
        self.undetermined += 1
        self.stuck.add(number)
        print(  # noqa: T201
            f"line {number}: not settled ({type(exc).__name__}); "
            "run the same command again to settle it",
            file=sys.stderr,
        )

    async def outlast(self, lease: float) -> None:
        """On a shared journal: stay until no line of this input is unfinished anywhere.

        A dead host's lines are taken over once its lease ran out (by the
        heartbeat, or here), and answered here; a live host's are left to
        it. Checked every third of the lease. The host leaves early when
        every line still unfinished is one it took and could not settle
        (exit status 1: run it again).
        """
        gw = self.gw
        while True:
            jobs = {job.tag: job for job in self.taken}
            self.taken.clear()
            entries = await self.entries_of(
                await gw.journal.entries(gw.base_url, gw.shop_id), retry_refused=False
            )
            unfinished = {n for n, entry in entries.items() if not entry.finished}
            if unfinished:
                jobs.update({job.tag: job for job in await gw.resume_all()})
            mine = {n: e for n, e in entries.items() if e.tag in jobs and n not in self.written}
            self.stuck.clear()
            await self.answer(mine, set(), jobs, replay=False)
            if not unfinished and not self.taken:
                return
            if unfinished and unfinished <= self.stuck:
                return  # all that is left, this host took and cannot settle
            await anyio.sleep(lease / 3)

    def indeterminate(self, record: dict[str, Any], exc: SubmitIndeterminate) -> None:
        """A submit without an answer: settled by the next run when the journal lasts."""
        if not self.settle_later:
            self.write({**record, "ok": False, **error_fields(exc)}, failed=True)
            return
        # Not answered yet: the journal keeps the intent, and the next
        # run re-sends it with its RequestID and writes the real outcome.
        self.undetermined += 1
        print(  # noqa: T201
            f"line {record['line']}: no answer after {exc.attempts} sends "
            f"(RequestID {exc.idempotency_key}); run the same command again to settle it",
            file=sys.stderr,
        )

    def stop(self, exc: RequestRejected) -> None:
        """Our credentials were refused: send nothing more (the lines refused stay unanswered)."""
        if self.refused is None:
            self.refused = exc
            print(  # noqa: T201
                f"begateway-async run: the gateway refused the credentials (HTTP "
                f"{exc.status_code}); nothing more is sent. Check --shop-id and the secret key, "
                "then run the same command again: the refused lines are sent then.",
                file=sys.stderr,
            )

    async def one(self, number: int, data: dict[str, Any], semaphore: anyio.Semaphore) -> None:
        record: dict[str, Any] = {
            "line": number,
            "operation": data.get("operation"),
            "tracking_id": data.get("tracking_id"),
        }
        try:
            if self.refused is not None:
                return
            request = request_from_mapping(data)
            attempt = self.attempts.get(number, 0)
            key = line_key(self.print_, number, attempt) if self.shared else None
            job = await self.gw.submit(request, idempotency_key=key, tag=tag(self.print_, number))
        except DuplicateIntent:  # another host took the line
            self.elsewhere += 1
            self.progress.advance(failed=False)
            return
        except InvalidRequest as exc:
            print(f"line {number}: {exc}", file=sys.stderr)  # noqa: T201
            self.write({**record, "ok": False, **error_fields(exc)}, failed=True)
        except SubmitIndeterminate as exc:
            self.indeterminate(record, exc)
        except RequestRejected as exc:
            if exc.status_code == CREDENTIALS_REFUSED:
                self.stop(exc)
            else:
                self.write({**record, "ok": False, **error_fields(exc)}, failed=True)
        except GatewayError as exc:
            self.write({**record, "ok": False, **error_fields(exc)}, failed=True)
        except Exception as exc:  # noqa: BLE001 - one line's surprise never ends the run
            self.write({**record, "ok": False, **unexpected(exc)}, failed=True)
        else:
            await self.finish(record, job)
        finally:
            semaphore.release()

    async def finish(self, record: dict[str, Any], job: Job[Any]) -> None:
        """Wait for ``job`` and write its line."""
        record["request_id"] = job.request_id
        try:
            value = await job.result(self.timeout)
            fields = result_fields(value)
        except RequestRejected as exc:
            if exc.status_code == CREDENTIALS_REFUSED:
                self.stop(exc)  # refused while polling: unanswered, resumed by the next run
                return
            self.write({**record, "ok": False, **error_fields(exc)}, failed=True)
            return
        except (JobAbandoned, JournalError, SubmitIndeterminate) as exc:  # the entry stays open
            self.unsettled(record["line"], exc)
            return
        except GatewayError as exc:
            self.write({**record, "ok": False, **error_fields(exc)}, failed=True)
            return
        except Exception as exc:  # noqa: BLE001 - one line's surprise never ends the run
            self.write({**record, "ok": False, **unexpected(exc)}, failed=True)
            return
        failed = fields.get("status") in _FAILED_STATUSES
        self.write({**record, "ok": not failed, **fields}, failed=failed)

    async def recover(self, answered: set[int], *, retry_refused: bool) -> set[int]:
        """Answer what the journal holds for lines not answered yet; return the lines it holds.

        Unfinished submits are resumed (`Gateway.resume_all`: polled, or re-sent
        with their own RequestID); finished ones are written from the journal.
        A line the journal holds is never submitted again, except a line whose
        submit was refused for our credentials (always), or refused at all
        (with ``retry_refused``): nothing was created, it is sent afresh.

        Raises:
            UsageError: the journal belongs to another input.
        """
        entries = await self.entries_of(await self.gw.journal.entries(self.gw.base_url,
                                                                    self.gw.shop_id),
                                      retry_refused=retry_refused)  # fmt: skip
        resumed = {job.tag: job for job in await self.gw.resume_all()}
        # On a shared journal, the lines other hosts ended are theirs to write (or the merge's).
        await self.answer(entries, answered, resumed, replay=not self.shared)
        return set(entries)

    async def answer(
        self,
        entries: dict[int, JournalEntry],
        answered: set[int],
        resumed: dict[str | None, Job[Any]],
        *,
        replay: bool,
    ) -> None:
        """Write the lines of ``entries`` not ``answered``: from their jobs, or their ends."""
        gw = self.gw
        async with anyio.create_task_group() as tg:
            for number, entry in entries.items():
                if number in answered:
                    continue
                record: dict[str, Any] = {
                    "line": number,
                    "operation": entry.operation,
                    "tracking_id": entry.tracking_id,
                }
                try:
                    job = resumed.get(entry.tag) or (gw.replay(entry) if replay else None)
                except GatewayError as exc:  # its answer cannot be read here: kept for later
                    self.unsettled(number, exc)
                    continue
                if job is not None:
                    tg.start_soon(self.finish, record, job)
                elif entry.outcome is not None and replay:
                    record["error"] = entry.outcome.error or "TransportError"
                    record["message"] = entry.outcome.message
                    self.write({**record, "ok": False}, failed=True)
                elif replay:
                    self.unsettled(number, JobAbandoned("unfinished", request_id=entry.key,
                                                        tracking_id=entry.tracking_id))  # fmt: skip

    async def entries_of(
        self, found: list[JournalEntry], *, retry_refused: bool
    ) -> dict[int, JournalEntry]:
        """The journal's newest entry of each input line, but those to send afresh."""
        latest: dict[int, JournalEntry] = {}  # a line sent afresh: its newest entry speaks
        for entry in found:  # oldest first
            tagged = untag(entry.tag)
            if tagged is None or (self.shared and tagged[0] != self.print_):
                continue  # a shared journal holds other batches too
            if tagged[0] not in (None, self.print_):
                raise UsageError(
                    "this output's journal belongs to another input file: give this input its "
                    "own --out, and finish the other batch with its own file (--force would "
                    "discard the journal, and lines already paid would be paid again)"
                )
            latest[tagged[1]] = entry
            if _afresh(entry, retry_refused):
                self.attempts[tagged[1]] = self.attempts.get(tagged[1], 0) + 1
        return {n: entry for n, entry in latest.items() if not _afresh(entry, retry_refused)}

    async def run(self, stream: IO[bytes], concurrency: int, skip: set[int]) -> None:
        semaphore = anyio.Semaphore(concurrency)
        async with anyio.create_task_group() as tg:
            for number, line in lines(stream):
                if self.refused is not None:
                    return
                if number in skip:
                    continue
                if line is None:
                    self.bad_line(number, "not UTF-8")
                    continue
                try:
                    data = json.loads(line)
                except (ValueError, RecursionError) as exc:
                    self.bad_line(number, f"not JSON: {type(exc).__name__}: {exc}"[:200])
                    continue
                if not isinstance(data, dict):
                    self.bad_line(number, f"must be a JSON object, not {type(data).__name__}")
                    continue
                await semaphore.acquire()
                tg.start_soon(self.one, number, data, semaphore)


def _afresh(entry: JournalEntry, retry_refused: bool) -> bool:
    """Whether a line's entry was refused before anything was created: it is sent afresh."""
    outcome = entry.outcome
    if outcome is None or outcome.kind != "rejected":
        return False
    return retryable(outcome.status_code, retry_refused)


@attrs.frozen
class Options:
    gateway: str
    shop_id: str
    secret: str = attrs.field(repr=False)
    total: int | None
    timeout: float | None
    concurrency: int
    journal: str | None = attrs.field(repr=False)  # a DSN may carry a password
    earlier_failures: int  # lines an earlier run answered as failed
    print_: str
    retry_refused: bool
    lease: float = 30.0


async def _main(options: Options, source: IO[bytes], out: IO[str], done: set[int]) -> int:
    progress = Progress(options.total, "jobs", already=len(done), failed=options.earlier_failures,
                        failed_as="not successful")  # fmt: skip
    journal: Any = options.journal
    if isinstance(journal, str) and journal.startswith(("postgresql://", "postgres://")):
        journal = PostgresJournal(journal, lease=options.lease)
    try:
        taken: list[Job[Any]] = []  # from the first heartbeat on, before the batch starts
        async with Gateway(options.gateway, options.shop_id, options.secret, journal=journal,
                           on_take_over=taken.append) as gw:  # fmt: skip
            batch = Batch(gw, out, progress, options.timeout, options.print_)
            batch.taken = taken
            held = await batch.recover(done, retry_refused=options.retry_refused)
            await batch.run(source, options.concurrency, done | held)
            if batch.shared and batch.refused is None:
                await batch.outlast(options.lease)
    finally:
        progress.close()
        if isinstance(journal, PostgresJournal):
            await journal.aclose()
    if batch.refused is not None:
        return 2
    return 1 if batch.failures or batch.undetermined or options.earlier_failures else 0


def run_batch(args: argparse.Namespace) -> int:
    """Run ``begateway-async run``; return the exit status."""
    try:
        gateway, shop_id, secret, journal = settings(args)
        resuming = check_paths(args, journal)
    except UsageError as exc:
        print(f"begateway-async run: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    out_path = Path(args.out)
    if resuming and args.retry_rejected:
        drop_refused(out_path, retryable)
    done, earlier_failures = answered(out_path) if resuming else (set(), 0)
    if resuming:
        print(f"resuming: {len(done)} lines already answered in {out_path}", file=sys.stderr)  # noqa: T201
    options = Options(
        gateway=gateway,
        shop_id=shop_id,
        secret=secret,
        total=count_lines(args.input),
        timeout=args.timeout,
        concurrency=max(1, args.concurrency),
        journal=str(journal) if journal is not None else None,
        earlier_failures=earlier_failures,
        print_=fingerprint(args.input),
        retry_refused=bool(args.retry_rejected),
        lease=args.lease,
    )
    with contextlib.ExitStack() as stack:
        opened = None if args.input == "-" else stack.enter_context(Path(args.input).open("rb"))
        out = stack.enter_context(private_output(out_path, append=resuming))
        try:
            status = anyio.run(
                _main, options, opened or sys.stdin.buffer, out, done, backend=args.backend
            )
        except (InvalidRequest, UsageError) as exc:  # a bad gateway URL, another input's journal
            print(f"begateway-async run: {exc}", file=sys.stderr)  # noqa: T201
            return 2
    print(summary(out_path, total=options.total), file=sys.stderr)  # noqa: T201
    return status
