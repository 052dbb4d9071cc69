"""Terminal output for the command line: a progress bar, plain progress lines, tables."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

__all__ = ["Progress", "table"]


class Progress:
    """A progress bar on a terminal; a plain line every few seconds otherwise.

    Args:
        total: how many items are expected (None when unknown).
        label: what is counted.
        stream: where to write (stderr by default).
        already: items an earlier run finished: counted, but not in the rate.
        failed: how many of those failed.
        failed_as: what the failed count is called on the line.
    """

    def __init__(
        self,
        total: int | None,
        label: str,
        stream: TextIO | None = None,
        *,
        already: int = 0,
        failed: int = 0,
        failed_as: str = "failed",
    ) -> None:
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.already = already
        self.done = already
        self.failed = failed
        self.failed_as = failed_as
        self._tty = self.stream.isatty()
        self._started = time.monotonic()
        self._shown = 0.0

    def advance(self, *, failed: bool = False) -> None:
        """Count one finished item."""
        self.done += 1
        self.failed += failed
        now = time.monotonic()
        if now - self._shown >= (0.1 if self._tty else 5.0):
            self._shown = now
            self._show(now)

    def _show(self, now: float) -> None:
        elapsed = now - self._started
        here = self.done - self.already
        rate = here / elapsed if elapsed > 0 else 0.0
        of = f"/{self.total}" if self.total else ""
        run = f" ({here} this run)" if self.already else ""
        text = f"{self.done}{of} {self.label}{run}, {self.failed} {self.failed_as}, {rate:.0f}/s"
        if self._tty and self.total:
            width = 30
            filled = int(width * self.done / self.total)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r[{bar}] {text} ")
        elif self._tty:
            self.stream.write(f"\r{text} ")
        else:
            self.stream.write(f"{text}\n")
        self.stream.flush()

    def close(self) -> None:
        """Show the final count and end the line."""
        self._show(time.monotonic())
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Format rows as an aligned plain-text table (numbers right-aligned)."""
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(_is_number(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        parts = [
            c.rjust(w) if numeric[i] and n else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
