"""Which journal a Gateway's ``journal=`` argument stands for."""

from __future__ import annotations

import os

from ._errors import InvalidRequest
from ._journal import Journal, MemoryJournal
from ._postgres import PostgresJournal
from ._sqlite import SQLiteJournal

__all__ = ["is_postgres_url", "open_journal"]


def is_postgres_url(journal: object) -> bool:
    """Whether ``journal=`` names a PostgreSQL database (``postgresql://...``)."""
    return isinstance(journal, str) and journal.startswith(("postgresql://", "postgres://"))


def open_journal(journal: Journal | str | os.PathLike[str] | None) -> Journal:
    """The journal for ``journal=``: None, a `Journal`, a PostgreSQL URL, or an SQLite path.

    A string starting with ``postgresql://`` or ``postgres://`` opens a
    `PostgresJournal` with its defaults; any other string or path, an
    `SQLiteJournal`.
    """
    if journal is None:
        return MemoryJournal()
    if is_postgres_url(journal):
        assert isinstance(journal, str)  # noqa: S101 - checked
        return PostgresJournal(journal)
    if isinstance(journal, str | os.PathLike):
        return SQLiteJournal(journal)
    if isinstance(journal, Journal):
        return journal
    raise InvalidRequest("journal", "must be a path, a PostgreSQL URL, a Journal, or None")
