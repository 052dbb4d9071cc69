"""Which journal a Gateway's ``journal=`` argument stands for."""

from __future__ import annotations

import os

from ._errors import InvalidRequest
from ._journal import Journal, MemoryJournal
from ._postgres import PostgresJournal
from ._sqlite import SQLiteJournal

__all__ = ["open_journal"]


def open_journal(journal: Journal | str | os.PathLike[str] | None) -> Journal:
    """The journal for ``journal=``: None, a `Journal`, a PostgreSQL URL, or an SQLite path.

    A string starting with ``postgresql://`` or ``postgres://`` opens a
    `PostgresJournal` with its defaults; any other string or path, an
    `SQLiteJournal`.
    """
    if journal is None:
        return MemoryJournal()
    if isinstance(journal, str) and journal.startswith(("postgresql://", "postgres://")):
        return PostgresJournal(journal)
    if isinstance(journal, str | os.PathLike):
        return SQLiteJournal(journal)
    if isinstance(journal, Journal):
        return journal
    raise InvalidRequest("journal", "must be a path, a PostgreSQL URL, a Journal, or None")
