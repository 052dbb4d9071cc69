"""How long the simulated bank takes: processing-time distributions."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = ["Distribution", "Fixed", "FromRequest", "LogNormal", "Uniform", "pick"]


@runtime_checkable
class Distribution(Protocol):
    """Draws a processing time in seconds for one request."""

    def sample(self, rng: random.Random, operation: str, request: Any) -> float:
        """Return seconds (never negative)."""
        ...


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be >= 0, not {value!r}")


@attrs.frozen
class Fixed:
    """Always ``seconds``."""

    seconds: float = attrs.field(validator=_non_negative)

    def sample(self, rng: random.Random, operation: str, request: Any) -> float:  # noqa: ARG002
        """Return ``seconds``."""
        return float(self.seconds)


@attrs.frozen
class Uniform:
    """Uniform between ``low`` and ``high`` seconds."""

    low: float = attrs.field(validator=_non_negative)
    high: float = attrs.field(validator=_non_negative)

    def sample(self, rng: random.Random, operation: str, request: Any) -> float:  # noqa: ARG002
        """Return a uniform draw."""
        return rng.uniform(self.low, self.high)


@attrs.frozen
class LogNormal:
    """Lognormal with the given ``median`` seconds and ``sigma`` (of the underlying normal).

    ``LogNormal(1.0, 0.99)`` has a median of 1 s and a 99th percentile of 10 s.
    """

    median: float = attrs.field(validator=_non_negative)
    sigma: float = attrs.field(validator=_non_negative)

    @classmethod
    def from_percentiles(cls, median: float, p99: float) -> LogNormal:
        """The lognormal with this median and 99th percentile."""
        return cls(median, math.log(p99 / median) / 2.3263478740408408)

    def sample(self, rng: random.Random, operation: str, request: Any) -> float:  # noqa: ARG002
        """Return a lognormal draw."""
        return rng.lognormvariate(math.log(self.median), self.sigma) if self.median else 0.0


@attrs.frozen
class FromRequest:
    """Seconds computed from the operation's name and its ``request`` object."""

    function: Callable[[str, Any], float]

    def sample(self, rng: random.Random, operation: str, request: Any) -> float:  # noqa: ARG002
        """Return ``function(operation, request)``."""
        return max(0.0, float(self.function(operation, request)))


def pick(
    processing: Distribution | float | Mapping[str, Distribution | float], operation: str
) -> Distribution:
    """The distribution for ``operation``: a mapping by operation name (``"*"`` for the rest)."""
    if isinstance(processing, Mapping):
        chosen = processing.get(operation, processing.get("*", 0.0))
    else:
        chosen = processing
    if isinstance(chosen, int | float):
        return Fixed(float(chosen))
    return chosen
