"""The gateway's error envelopes: where its message, per-field errors and code are.

It answers errors in several shapes (v2 ``{"message", "errors"}``, v3
``{"code", "message"}``, nested under ``"response"``, ``error_code``); each
reader looks in all of them.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["error_code", "error_details", "error_message"]


def error_message(body: object) -> str | None:
    """Find the human message in any of the gateway's error envelopes."""
    if not isinstance(body, Mapping):
        return None
    message = body.get("message")
    if isinstance(message, str) and message:
        return message
    inner = body.get("response")
    if isinstance(inner, Mapping):
        message = inner.get("message")
        if isinstance(message, str) and message:
            return message
    friendly = body.get("friendly_message")
    if isinstance(friendly, str) and friendly:
        return friendly
    return None


def error_details(body: object) -> object:
    """Find the per-field ``errors`` object in any of the gateway's envelopes."""
    if not isinstance(body, Mapping):
        return None
    if "errors" in body:
        return body["errors"]
    inner = body.get("response")
    if isinstance(inner, Mapping):
        return inner.get("errors")
    return None


def error_code(body: object) -> object:
    """The code of any of the gateway's error envelopes (v3 ``code``, ``error_code``, nested)."""
    if not isinstance(body, Mapping):
        return None
    for candidate in (body, body.get("response")):
        if isinstance(candidate, Mapping):
            for key in ("code", "error_code"):
                value = candidate.get(key)
                if value is not None:
                    return value
    return None
