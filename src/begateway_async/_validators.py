"""The validators of the request models: each names the offending field in `InvalidRequest`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from ._errors import InvalidRequest

__all__ = [
    "COUNTRY",
    "CURRENCY",
    "DIGITS",
    "LANGUAGE",
    "LOCAL",
    "UID",
    "amount",
    "check_extra",
    "fail",
    "flag",
    "instance_of",
    "mapping",
    "pattern",
    "shown",
    "strings",
    "text",
    "tuple_or_none",
    "url",
]

CURRENCY = re.compile(r"[A-Z]{3}")
COUNTRY = re.compile(r"[A-Z]{2}")
LANGUAGE = re.compile(r"[a-z]{2}")
DIGITS = re.compile(r"[0-9]+")
UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: Keys that are ours, not the gateway's: never sent.
LOCAL = {"local": True}


def fail(instance: object, attribute: attrs.Attribute[Any], reason: str) -> None:
    raise InvalidRequest(f"{type(instance).__name__}.{attribute.name}", reason)


def amount(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        fail(instance, attribute, f"must be an integer in minor units, not {value!r}")
    elif value <= 0:
        fail(instance, attribute, f"must be greater than 0, not {value}")


def shown(value: object, *, secret: bool) -> str:
    """How a rejected value appears in a message: never at all for card data."""
    return f"the {type(value).__name__} given (not shown)" if secret else repr(value)


def pattern(regex: re.Pattern[str], what: str, *, secret: bool = False) -> Any:
    """A validator: None, or a string all of ``regex``; a ``secret`` value is never echoed."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            return
        if not isinstance(value, str) or not regex.fullmatch(value):
            fail(instance, attribute, f"must be {what}, not {shown(value, secret=secret)}")

    return check


def text(max_length: int, *, required: bool = False) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            if required:
                fail(instance, attribute, "is required")
            return
        if not isinstance(value, str):
            fail(instance, attribute, f"must be a string, not {type(value).__name__}")
        elif required and not value.strip():
            fail(instance, attribute, "must not be blank")
        elif len(value) > max_length:
            fail(instance, attribute, f"must be at most {max_length} characters")

    return check


def url(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not re.match(r"https?://[^/\s]+", value):
        fail(instance, attribute, f"must be an absolute http(s) URL, not {value!r}")


def flag(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, bool):
        fail(instance, attribute, f"must be True, False or None, not {value!r}")


def mapping(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, Mapping):
        fail(instance, attribute, f"must be a mapping, not {type(value).__name__}")


def instance_of(cls: type | tuple[type, ...]) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and not isinstance(value, cls):
            names = " or ".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))
            fail(instance, attribute, f"must be a {names}, not {type(value).__name__}")

    return check


def strings(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
        fail(instance, attribute, "must be a list of strings")


def tuple_or_none(value: Any) -> Any:
    # A list becomes a tuple (frozen); anything else is left for the
    # validator to refuse by name (a bare string is not a list of strings).
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


def check_extra(instance: Any) -> None:
    extra = getattr(instance, "extra", None)
    if not extra:
        return
    named = {a.name for a in attrs.fields(type(instance))}
    for key in extra:
        if not isinstance(key, str):
            raise InvalidRequest(f"{type(instance).__name__}.extra", "keys must be strings")
        if key in named:
            raise InvalidRequest(
                f"{type(instance).__name__}.extra", f"{key!r} is a named field; set it directly"
            )
