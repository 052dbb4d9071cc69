"""Fault switches of the simulator: each fires at a rate, or by a script, on chosen endpoints."""

from __future__ import annotations

import random
from collections.abc import Iterable

import attrs

__all__ = ["ENDPOINTS", "Fault", "Faults"]

#: The endpoints a fault can apply to.
ENDPOINTS = frozenset({"submit", "status", "result", "sync", "query"})


def _rate(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"Fault.{attribute.name} must be between 0 and 1, not {value!r}")


def _endpoints(value: Iterable[str]) -> frozenset[str]:
    names = frozenset(value)
    if not names <= ENDPOINTS:
        raise ValueError(f"Fault.on: unknown endpoints {sorted(names - ENDPOINTS)}")
    return names


@attrs.define
class Fault:
    """When one kind of fault fires.

    Args:
        rate: the chance of firing on each eligible request, once the script is used up.
        script: fire (True) or not (False) on the next eligible requests, in order.
        on: the endpoints it applies to (``submit``, ``status``, ``result``, ``sync``, ``query``).
        retry_after: the ``Retry-After`` seconds sent with a 429 or 503.
        delay: how long a slow answer takes, in seconds (on the simulator's clock).
    """

    rate: float = attrs.field(default=0.0, validator=_rate)
    script: list[bool] = attrs.field(factory=list, converter=list)
    on: frozenset[str] = attrs.field(
        default=frozenset({"submit", "status", "result"}), converter=_endpoints
    )
    retry_after: float = 1.0
    delay: float = 30.0
    fired: int = attrs.field(default=0, init=False)

    def fires(self, endpoint: str, rng: random.Random) -> bool:
        """Decide for one request; counts the times it fired."""
        if endpoint not in self.on:
            return False
        if self.script:
            hit = bool(self.script.pop(0))
        else:
            hit = self.rate > 0 and rng.random() < self.rate
        self.fired += hit
        return hit


def _off() -> Fault:
    return Fault()


@attrs.define
class Faults:
    """Every fault switch of the simulator; all off by default.

    Attributes:
        too_early: a running task answers 425 Too Early instead of 200 ``processing``.
        throttle: 429 with ``Retry-After``.
        unavailable: 503 with ``Retry-After``.
        html_error: 500 with an HTML body.
        drop: the connection drops before an answer.
        slow: the answer comes after ``delay`` seconds.
        truncate: the answer's body is cut short (its JSON unreadable).
        internal_error: the task fails with 500 ``{"message": "We're sorry, ..."}``
            (decided when the task is created; served once).
    """

    too_early: Fault = attrs.field(factory=_off)
    throttle: Fault = attrs.field(factory=_off)
    unavailable: Fault = attrs.field(factory=_off)
    html_error: Fault = attrs.field(factory=_off)
    drop: Fault = attrs.field(factory=_off)
    slow: Fault = attrs.field(factory=_off)
    truncate: Fault = attrs.field(factory=_off)
    internal_error: Fault = attrs.field(factory=_off)

    def counts(self) -> dict[str, int]:
        """How many times each fault fired."""
        return {f.name: getattr(self, f.name).fired for f in attrs.fields(Faults)}
