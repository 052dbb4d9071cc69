"""The simulator's HTTP plumbing: which endpoint a request is for, its shop, its base URL."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, MutableMapping
from typing import Any, Final

from ._books import CARD_OPERATIONS, CHILD_OPERATIONS, PAYOUT_OPERATIONS

__all__ = ["CONTROL", "base_url", "operation_of", "parse_auth", "route"]

#: The simulator's own endpoints, under this path, take no credentials.
CONTROL: Final = "/_simulator/"
_QUERY_OPERATIONS: Final = {"query": "status_query", "tracking_id": "tracking_id_query"}
#: Path name → operation name (``payments`` → ``payment``).
_OPERATION_NAMES: Final = {**CARD_OPERATIONS, **CHILD_OPERATIONS, **PAYOUT_OPERATIONS}


def parse_auth(header: str | None) -> tuple[str, str] | None:
    """The (user, password) of an HTTP Basic ``Authorization`` header, if it is one."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def route(method: str, path: str) -> tuple[str, tuple[str, ...]]:
    """Name the endpoint and its route (kind, name) from the method and path."""
    parts = [p for p in path.split("/") if p]
    is_async = bool(parts) and parts[0] == "async"
    if is_async:
        parts = parts[1:]
    prefix = "submit" if is_async else "sync"
    if method == "GET" and is_async and len(parts) == 2 and parts[0] in ("status", "result"):  # noqa: PLR2004
        return parts[0], (parts[0], parts[1])
    if method == "POST" and len(parts) == 2 and parts[0] == "transactions":  # noqa: PLR2004
        return prefix, ("transactions", parts[1])
    if method == "POST" and parts == ["balance"]:
        return prefix, ("balance", "")
    if method == "GET" and len(parts) >= 2 and parts[-2] == "tracking_id":  # noqa: PLR2004
        legacy = parts[0] != "v2"
        kind = "tracking_id_legacy" if legacy else "tracking_id"
        return (prefix if is_async else "query"), (kind, parts[-1])
    if method == "GET" and len(parts) == 2 and parts[0] == "transactions":  # noqa: PLR2004
        return (prefix if is_async else "query"), ("query", parts[1])
    return "unknown_route", ()


def operation_of(route: tuple[str, ...]) -> str:
    """The operation's name for a route (``("transactions", "payments")`` → ``payment``)."""
    kind, name = route
    if kind == "transactions":
        return _OPERATION_NAMES.get(name, name)
    if kind == "balance":
        return "balance_query"
    return _QUERY_OPERATIONS.get(kind, "tracking_id_query")


def base_url(scope: MutableMapping[str, Any], headers: Mapping[str, str]) -> str:
    """The URL the client reached the simulator at (its answers' URLs start with it)."""
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"
