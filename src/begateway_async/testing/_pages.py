"""The simulator's HTML pages: what it is (``GET /``) and its test 3-D Secure page.

``GET /process/{uid}`` is the page a transaction's ``redirect_url`` names:
the transaction's amount and two buttons, as the gateway's test ACS shows.
**Approve** passes 3-D Secure (the card's own final status: 4012 0000 0000
1097 succeeds, 4012 0000 0000 1022 fails), **Decline** fails it. Either way
the customer then goes to the payment's ``return_url`` (with ``uid`` and
``status`` added to its query), or sees the result here when it had none.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from ._books import CARDS

__all__ = ["Paged", "page"]

_HTML = {"content-type": "text/html; charset=utf-8"}


class Paged(Protocol):
    """What the pages read of a `Simulator`."""

    @property
    def shops(self) -> Mapping[str, str]:
        """Shop id → secret key."""
        ...

    def transaction(self, uid: str) -> Any:
        """The record of transaction ``uid``, or None."""
        ...

    def complete_three_d_secure(self, uid: str, *, passed: bool = True) -> str | None:
        """The customer is back from 3-D Secure; the final status, if the transaction waited."""
        ...


def page(
    simulator: Paged, method: str, path: str, body: bytes
) -> tuple[int, dict[str, str], bytes] | None:
    """The answer to a page request, or None when ``path`` names no page."""
    if path == "/":
        return (200, _HTML, _home(simulator)) if method == "GET" else _not_allowed()
    parts = [p for p in path.split("/") if p]
    if len(parts) != 2 or parts[0] != "process":  # noqa: PLR2004
        return None
    return _process(simulator, parts[1], method, body)


def _process(
    simulator: Paged, uid: str, method: str, body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """``/process/{uid}``: the page (GET), the customer's choice (POST)."""
    record = simulator.transaction(uid)
    if record is None:
        return 404, _HTML, _document("Not found", "<p>No such transaction.</p>")
    if method == "GET":
        return 200, _HTML, _acs(record)
    if method != "POST":
        return _not_allowed()
    choice = parse_qs(body.decode("utf-8", "replace")).get("result", [""])[0]
    if choice not in ("approve", "decline"):
        return 400, _HTML, _document("Bad request", "<p>Approve or decline.</p>")
    status = simulator.complete_three_d_secure(uid, passed=choice == "approve")
    if status is not None and record.return_url:
        return 303, {**_HTML, "location": _with_query(record.return_url, uid, status)}, b""
    return 200, _HTML, _result(record)  # no return_url, or back again: how it stands


def _not_allowed() -> tuple[int, dict[str, str], bytes]:
    return 405, _HTML, _document("Method not allowed", "<p>Not here.</p>")


def _with_query(url: str, uid: str, status: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"uid": uid, "status": status})) if q)
    return urlunsplit(parts._replace(query=query))


def _document(title: str, content: str) -> bytes:
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font:16px system-ui,sans-serif;max-width:44em;margin:2em auto;padding:0 1em}"
        "code,td{font-family:ui-monospace,monospace}td{padding:.1em 1em .1em 0}"
        "button{font-size:1em;padding:.5em 2em;margin-right:1em}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{content}</body></html>\n"
    ).encode()


def _home(simulator: Paged) -> bytes:
    shops = "".join(
        f"<tr><td>{html.escape(shop)}</td><td>{html.escape(secret)}</td></tr>"
        for shop, secret in simulator.shops.items()
    )
    cards = "".join(
        f"<tr><td>{number}</td><td>{'3-D Secure ' + enrolled if enrolled else 'no 3-D Secure'}"
        f"</td><td>{final}</td></tr>"
        for number, (enrolled, final) in CARDS.items()
    )
    return _document(
        "beGateway simulator",
        "<p>A stand-in for a beGateway-platform gateway in async mode, for tests and demos "
        "(begateway-async). It takes the gateway's <code>/async/...</code> requests with HTTP "
        "Basic credentials, answers each task by its request id, and keeps results as the "
        "gateway does. Nothing here is real money.</p>"
        "<h2>Shops</h2><table><tr><th>shop id</th><th>secret key</th></tr>"
        f"{shops}</table>"
        "<p>Notifications are signed: the key that verifies them is at <a id=public-key "
        'href="/_simulator/public_key">/_simulator/public_key</a>. Counters: '
        '<a href="/_simulator/stats">/_simulator/stats</a>.</p>'
        "<p>The same operation with the same amount and card within 30 s is refused as a "
        "duplicate (E.1018), as on the gateway: to run a sample again at once, change the "
        "amount or send <code>duplicate_check: false</code>.</p>"
        f"<h2>Test cards</h2><table>{cards}</table>",
    )


def _acs(record: Any) -> bytes:
    if record.status != "incomplete":
        return _result(record)
    amount = f"{record.amount / 100:.2f} {html.escape(record.currency)}"
    return _document(
        "3-D Secure",
        f"<p>Confirm the payment of <strong id=amount>{amount}</strong>"
        f"{' for ' + html.escape(record.description) if record.description else ''}.</p>"
        f'<form method=post action="/process/{html.escape(record.uid)}">'
        "<button name=result value=approve>Approve</button>"
        "<button name=result value=decline>Decline</button></form>"
        "<p>This is the simulator's test page: nothing is asked of a real card.</p>",
    )


def _result(record: Any) -> bytes:
    return _document(
        "3-D Secure done",
        f"<p>Transaction <code>{html.escape(record.uid)}</code>: "
        f"<strong id=status>{html.escape(record.status)}</strong>.</p>",
    )
