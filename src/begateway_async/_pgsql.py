"""The SQL of `PostgresJournal`: its schema, its statements, and rows to records and back.

Tables (in the journal's schema): ``workers`` (one row per live Gateway,
with its lease), ``entries`` (one per submit, with its owner and the epoch
of that owner's claim), ``notifications``, and ``meta`` (the schema's
version). Every time the statements compare is ``clock_timestamp()``, the
database's clock as it reads when the statement runs (not ``now()``, which
stays at its transaction's start).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from ._records import JournalEntry, JournalNotification, JournalOutcome

__all__ = ["VERSION", "Statements"]

#: The schema's version: a newer one is migrated to on first use.
VERSION: Final = 1
#: The lease of a worker a claim found dead: no heartbeat renews it any more.
_DEAD: Final = "'-infinity'"
#: Ends that are the gateway's own answers: any worker holding one may record it first.
#: Every other end (not sent, lost, expired, ...) is a worker's own conclusion, written
#: only under the claim it was reached in (the entry's current epoch).
ANSWERS: Final = ("result", "failed", "rejected")
_THROTTLED: Final = (429, 503)

_ENTRY: Final = (
    "key, gateway, shop_id, operation, method, path, body, headers, tracking_id, tag, created_at, "
    "request_id, status_url, response_url, outcome, status_code, answer, error, message, "
    "finished_at"
)
_OUTCOME: Final = "outcome, status_code, answer, error, message, finished_at"
#: An entry is claimable when nobody holds it, or its owner was found dead (or is gone).
_CLAIMABLE: Final = (
    "(e.owner IS NULL OR NOT EXISTS (SELECT 1 FROM {s}.workers w "
    f"WHERE w.id = e.owner AND w.lease_until <> {_DEAD}))"
)


class Statements:
    """The statements of one schema (its name is checked by the journal)."""

    def __init__(self, schema: str) -> None:
        s = schema
        self.channel = f"{s}_ended"
        self.schema = (
            # One worker at a time creates or migrates the schema.
            "SELECT pg_advisory_xact_lock(8675309)",
            f"CREATE SCHEMA IF NOT EXISTS {s}",
            f"CREATE TABLE IF NOT EXISTS {s}.meta (version integer NOT NULL)",
            f"INSERT INTO {s}.meta SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM {s}.meta)",
            f"""CREATE TABLE IF NOT EXISTS {s}.workers (
                id uuid PRIMARY KEY, gateway text NOT NULL, shop_id text NOT NULL,
                host text NOT NULL, joined_at timestamptz NOT NULL DEFAULT now(),
                lease_until timestamptz NOT NULL)""",
            f"""CREATE TABLE IF NOT EXISTS {s}.entries (
                key text PRIMARY KEY, gateway text NOT NULL, shop_id text NOT NULL,
                operation text NOT NULL, method text NOT NULL, path text NOT NULL, body bytea,
                headers text NOT NULL, tracking_id text, tag text,
                created_at double precision NOT NULL, request_id text, status_url text,
                response_url text, outcome text, status_code integer, answer bytea, error text,
                message text, finished_at double precision, owner uuid,
                epoch bigint NOT NULL DEFAULT 1, claimed_at timestamptz)""",
            f"""CREATE INDEX IF NOT EXISTS entries_unfinished
                ON {s}.entries (gateway, shop_id, created_at) WHERE outcome IS NULL""",
            f"""CREATE INDEX IF NOT EXISTS entries_tracking
                ON {s}.entries (gateway, shop_id, tracking_id) WHERE tracking_id IS NOT NULL""",
            f"""CREATE TABLE IF NOT EXISTS {s}.notifications (
                id bigserial PRIMARY KEY, gateway text NOT NULL, shop_id text NOT NULL,
                uid text NOT NULL, tracking_id text, status text NOT NULL, body bytea NOT NULL,
                received_at double precision NOT NULL, key text)""",
            f"""CREATE INDEX IF NOT EXISTS notifications_uid
                ON {s}.notifications (gateway, shop_id, uid) WHERE key IS NOT NULL""",
            f"UPDATE {s}.meta SET version = {VERSION} WHERE version < {VERSION}",
        )
        # Whether the schema is current: then nothing of `schema` runs.
        self.current = (
            f"SELECT to_regclass('{s}.meta') IS NOT NULL",
            f"SELECT version >= {VERSION} FROM {s}.meta",
        )
        self.join = (
            f"INSERT INTO {s}.workers (id, gateway, shop_id, host, lease_until) "
            "VALUES (%s, %s, %s, %s, clock_timestamp() + make_interval(secs => %s))"
        )
        self.heartbeat = (
            f"UPDATE {s}.workers SET lease_until = clock_timestamp() + make_interval(secs => %s) "
            "WHERE id = %s AND lease_until > clock_timestamp() RETURNING 1"
        )
        # Rows of workers dead for a day (or found dead by a claim) say nothing any more.
        self.forget_workers = (
            f"DELETE FROM {s}.workers WHERE lease_until < clock_timestamp() - interval '1 day'"
        )
        # A claim first marks the workers whose lease ran out as dead, under their rows'
        # locks: a heartbeat under way is waited for (and then stands), a later one
        # renews nothing. Their entries are then claimable.
        self.bury = (
            f"UPDATE {s}.workers SET lease_until = {_DEAD} WHERE gateway = %s AND shop_id = %s "
            f"AND lease_until <= clock_timestamp() AND lease_until <> {_DEAD}"
        )
        # This worker's lease, its row locked until the transaction ends: nobody marks
        # it dead meanwhile (an intent or a claim is made only under a live lease).
        self.alive = (
            f"SELECT 1 FROM {s}.workers WHERE id = %s AND lease_until > clock_timestamp() FOR SHARE"
        )
        claimable = _CLAIMABLE.format(s=s)
        returned = ", ".join("e." + c for c in _ENTRY.split(", "))
        self.claim = f"""
            WITH c AS (
                SELECT e.key FROM {s}.entries e
                WHERE e.gateway = %s AND e.shop_id = %s AND e.outcome IS NULL AND {claimable}
                ORDER BY e.created_at LIMIT %s
                FOR UPDATE OF e SKIP LOCKED)
            UPDATE {s}.entries e SET owner = %s, epoch = e.epoch + 1,
                claimed_at = clock_timestamp()
            FROM c WHERE e.key = c.key
            RETURNING {returned}, e.epoch"""
        self.own = (
            f"SELECT {returned}, e.epoch FROM {s}.entries e WHERE e.gateway = %s "
            "AND e.shop_id = %s AND e.outcome IS NULL AND e.owner = %s ORDER BY e.created_at"
        )
        self.hand_back = (
            f"UPDATE {s}.entries SET owner = NULL WHERE key = %s AND owner = %s "
            "AND outcome IS NULL AND (epoch = %s OR %s::bigint IS NULL)"
        )
        self.release = (
            f"UPDATE {s}.entries SET owner = NULL WHERE owner = %s AND outcome IS NULL",
            f"DELETE FROM {s}.workers WHERE id = %s",
        )
        self.lock = "SELECT pg_advisory_xact_lock(%s)"
        self.same_intent = (
            f"SELECT key FROM {s}.entries WHERE gateway = %s AND shop_id = %s AND operation = %s "
            "AND tracking_id = %s AND key <> %s "
            "AND (outcome IS NULL OR outcome NOT IN ('rejected', 'not_sent')) LIMIT 1"
        )
        self.intent = (
            f"INSERT INTO {s}.entries AS e (key, gateway, shop_id, operation, method, path, body, "
            "headers, tracking_id, tag, created_at, owner) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            # The same key again: this worker's already, or taken (nobody's, a dead
            # worker's) with a new epoch; a live worker's unfinished entry stays its.
            "ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, epoch = e.epoch + 1, "
            "claimed_at = clock_timestamp() WHERE e.outcome IS NULL "
            f"AND (e.owner = EXCLUDED.owner OR {claimable}) RETURNING epoch, (xmax = 0) AS inserted"
        )
        self.standing = f"SELECT outcome IS NULL FROM {s}.entries WHERE key = %s"
        self.acknowledged = (
            f"UPDATE {s}.entries SET body = NULL, request_id = %s, status_url = %s, "
            "response_url = %s WHERE key = %s AND outcome IS NULL"
        )
        set_outcome = (
            "body = NULL, outcome = %s, status_code = %s, answer = %s, error = %s, "
            "message = %s, finished_at = %s"
        )
        # First writer wins; a stale owner (an older epoch) writes no conclusion of its own.
        self.finish = (
            f"UPDATE {s}.entries SET {set_outcome} WHERE key = %s AND outcome IS NULL "
            # Without a known epoch (a job resumed from its token): only this worker's or nobody's.
            "AND (epoch = %s OR (%s::bigint IS NULL AND (owner IS NULL OR owner = %s))) "
            # An acknowledged entry was sent, whatever a stale sender concluded.
            "AND (request_id IS NULL OR %s <> 'not_sent') "
            "RETURNING 1"
        )
        # The gateway's own answers: whoever holds one first.
        self.finish_any = (
            f"UPDATE {s}.entries SET {set_outcome} WHERE key = %s AND outcome IS NULL RETURNING 1"
        )
        self.outcome_of = f"SELECT key, {_OUTCOME} FROM {s}.entries WHERE key = %s"
        self.outcomes = f"SELECT key, {_OUTCOME} FROM {s}.entries WHERE key = ANY(%s)"
        self.entries = (
            f"SELECT {_ENTRY} FROM {s}.entries WHERE gateway = %s AND shop_id = %s "
            "ORDER BY created_at"
        )
        self.notified = (
            f"INSERT INTO {s}.notifications (gateway, shop_id, uid, tracking_id, status, body, "
            "received_at, key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        )
        self.notifications = (
            "SELECT gateway, shop_id, uid, tracking_id, status, body, received_at, key "
            f"FROM {s}.notifications WHERE gateway = %s AND shop_id = %s ORDER BY id"
        )
        self.candidates = (
            f"SELECT key, created_at FROM {s}.entries WHERE gateway = %s AND shop_id = %s "
            "AND tracking_id = %s AND outcome IS NULL AND operation = ANY(%s) FOR UPDATE"
        )
        self.uid_used = (
            f"SELECT 1 FROM {s}.notifications WHERE gateway = %s AND shop_id = %s AND uid = %s "
            "AND key IS NOT NULL LIMIT 1"
        )
        self.wake = "SELECT pg_notify(%s, %s)"
        self.listen = f"LISTEN {self.channel}"


def is_answer(o: JournalOutcome) -> bool:
    """Whether ``o`` is the gateway's own answer (see `ANSWERS`).

    A refusal with 429 or 503 is not: the gateway throttled every attempt
    and processed none, so it says nothing of the ``RequestID`` (another
    worker's send with it may have made a task).
    """
    return o.kind in ANSWERS and not (o.kind == "rejected" and o.status_code in _THROTTLED)


def lock_key(gateway: str, shop_id: str, tracking_id: str) -> int:
    """The advisory lock of one tracking id (a signed 64-bit number)."""
    digest = hashlib.sha256(f"{gateway}\x1f{shop_id}\x1f{tracking_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def intent_values(e: JournalEntry) -> tuple[Any, ...]:
    """The values of an intent's columns, in `Statements.intent`'s order (owner last, apart)."""
    return (
        e.key, e.gateway, e.shop_id, e.operation, e.method, e.path, e.body,
        json.dumps(e.headers), e.tracking_id, e.tag, e.created_at,
    )  # fmt: skip


def outcome_values(o: JournalOutcome) -> tuple[Any, ...]:
    """The values of an outcome's columns."""
    return (o.kind, o.status_code, o.body, o.error, o.message, o.finished_at)


def notification_values(n: JournalNotification, *, key: str | None = None) -> tuple[Any, ...]:
    """The values of a notification's columns (``key``: the entry it ended, if not its own)."""
    return (
        n.gateway, n.shop_id, n.uid, n.tracking_id, n.status, n.body, n.received_at,
        key if key is not None else n.key,
    )  # fmt: skip


def outcome(row: tuple[Any, ...]) -> JournalOutcome | None:
    """The outcome of a row of ``_OUTCOME`` (None when it has none yet)."""
    kind, status_code, answer, error, message, finished_at = row
    if kind is None:
        return None
    body = None if answer is None else bytes(answer)
    return JournalOutcome(kind, status_code, body, error, message, finished_at or 0.0)


def entry(row: tuple[Any, ...]) -> JournalEntry:
    """An entry from a row of ``_ENTRY``."""
    fields: list[Any] = list(row[:14])
    if fields[6] is not None:
        fields[6] = bytes(fields[6])  # body
    fields[7] = tuple((name, value) for name, value in json.loads(fields[7]))  # headers
    fields.append(outcome(row[14:]))
    return JournalEntry(*fields)
