"""``begateway-async run IN --journal postgresql://... --merge A B --out ALL``: one answer per line.

Several hosts ran one input on one shared journal, each writing its own
output. The merge writes one line per input line: the first complete answer
of each line in those outputs, then, for the lines none of them holds (a
host killed between recording an end and writing it), the end the journal
recorded. Nothing is sent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO

import anyio

from begateway_async import Gateway, InvalidRequest, JournalError, PostgresJournal

from ._batch import Batch, Options, settings
from ._console import Progress
from ._runfiles import UsageError, count_lines, fingerprint, outputs, private_output

__all__ = ["run_merge"]


async def _merge(options: Options, out: IO[str], merged: list[str]) -> int:
    """Write one line per input line: from the hosts' outputs, then from the shared journal.

    Nothing is sent: a line no output holds is written from the journal's
    record of its end (`Gateway.replay`); a line still unfinished, or never
    sent, is reported on stderr (exit status 1: run a host again first).
    """
    found = outputs(merged)
    progress = Progress(options.total, "lines")
    try:
        journal = PostgresJournal(options.journal or "")
        # A Gateway of its own journal, only to read the records (same credentials).
        async with Gateway(options.gateway, options.shop_id, options.secret) as gw:
            for number in sorted(found):
                out.write(found[number].decode("utf-8"))
            progress.done += len(found)
            batch = Batch(gw, out, progress, options.timeout, options.print_)
            try:
                recorded = await journal.entries(gw.base_url, gw.shop_id)
            finally:
                await journal.aclose()
            entries = await batch.entries_of(recorded, retry_refused=False)
            await batch.answer(entries, set(found), {}, replay=True)
    finally:
        progress.close()
    missing = (options.total or 0) - len(found) - len(set(entries) - set(found))
    if missing > 0:
        print(f"begateway-async run: {missing} lines were never sent; run a host again",  # noqa: T201
              file=sys.stderr)  # fmt: skip
    return 1 if missing > 0 or batch.undetermined else 0


def run_merge(args: argparse.Namespace) -> int:
    """Run ``begateway-async run --merge``; return the exit status."""
    try:
        gateway, shop_id, secret, journal = settings(args)
    except UsageError as exc:
        print(f"begateway-async run: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    if not isinstance(journal, str):
        print("begateway-async run: --merge needs the shared journal (--journal postgresql://...)",  # noqa: T201
              file=sys.stderr)  # fmt: skip
        return 2
    options = Options(
        gateway=gateway, shop_id=shop_id, secret=secret, total=count_lines(args.input),
        timeout=args.timeout, concurrency=1, journal=journal, earlier_failures=0,
        print_=fingerprint(args.input), retry_refused=False,
    )  # fmt: skip
    with private_output(Path(args.out), append=False) as out:
        try:
            return anyio.run(_merge, options, out, list(args.merge))
        except (InvalidRequest, UsageError, JournalError, OSError) as exc:
            print(f"begateway-async run: {exc}", file=sys.stderr)  # noqa: T201
            return 2
