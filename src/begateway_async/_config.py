"""Configuration: brand base URLs, the poll policy, timeouts and limits.

All configuration objects are frozen, keyword-only and validated once, at
construction; invalid values raise `InvalidRequest` naming the field.
"""

from __future__ import annotations

import ipaddress
import math
import random
from typing import Final
from urllib.parse import urlsplit

import attrs
import httpx

from ._errors import InvalidRequest

__all__ = [
    "BEGATEWAY_DEMO",
    "BEPAID",
    "ECOMCHARGE",
    "PAYCROSS",
    "UNONAPAY",
    "Limits",
    "PollPolicy",
    "Timeouts",
    "check_arguments",
]

#: Card gateway base URLs of the brands of the platform. Every base URL is
#: configuration: pass any other white label's gateway host to `Gateway`.
PAYCROSS: Final = "https://gateway.pay-cross.com"
UNONAPAY: Final = "https://gateway.unonapay.com"
BEPAID: Final = "https://gateway.bepaid.by"
ECOMCHARGE: Final = "https://processing.ecomcharge.com"
BEGATEWAY_DEMO: Final = "https://demo-gateway.begateway.com"

#: The gateway keeps a task's result for this long after the task's creation.
RESULT_RETENTION: Final = 24 * 3600.0


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise InvalidRequest(
            f"{type(instance).__name__}.{attribute.name}",
            f"must be a positive number, not {value!r}",
        )


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise InvalidRequest(
            f"{type(instance).__name__}.{attribute.name}", f"must be zero or more, not {value!r}"
        )


def _positive_int(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(
            f"{type(instance).__name__}.{attribute.name}", f"must be an integer >= 1, not {value!r}"
        )


@attrs.frozen(kw_only=True)
class PollPolicy:
    """When to poll a job.

    The first poll comes `first_delay` seconds after the gateway acknowledged
    the task; each later one `factor` times the previous delay, capped at
    `max_delay`, each multiplied by a random factor in ``[1 - jitter, 1 +
    jitter]`` so that jobs submitted together do not poll in lockstep. A
    ``Retry-After`` header on an answer wins over this schedule (kept between
    `min_retry_after` and `max_retry_after`); on 429 and 503 it pauses every
    poll to that host. Passing failures (a proxy error, a garbled answer, a
    reset) back off on this schedule too, counted from the first in a row,
    even when the adaptive plan applies.

    Attributes:
        first_delay: seconds from the acknowledgement to the first poll.
        factor: growth of the delay from one poll to the next (>= 1).
        max_delay: the largest delay between two polls of a job.
        jitter: relative spread of each delay, from 0 (none) to below 1.
        max_retry_after: the longest ``Retry-After`` obeyed; longer values are cut to it.
        min_retry_after: the shortest ``Retry-After`` obeyed: ``0`` or a negative value
            would have every poll sent again at once.
        status_first: poll ``status_url`` until ``completed``, then fetch
            ``response_url`` (two requests at the end instead of one). By
            default ``response_url`` is polled directly: it answers
            ``processing`` the same way and carries the result in the final poll.
        adaptive: learn how long each operation takes at this gateway and,
            once 30 completions were seen, poll on the plan that is optimal
            for that distribution (see `target_lag`) instead of the backoff
            above, which then covers only the start and the long tail. While
            nothing is learnt of an operation, one job in eight (256 at most)
            polls early, on a ladder up to `first_delay`, and the others look
            at half of it whether a plan came from those answers (a few jobs
            alone keep `first_delay`). While only the median can be told
            (every task of a burst polled about once), the plan polls no
            later than the backoff.
        target_lag: for the adaptive plan, the detection lag it aims at, in
            seconds: the expected time from the bank finishing a task to the
            poll that sees it. The plan spends the fewest polls that reach it
            for the distribution learnt, within a lag weight of 1/4 to 64 (see
            `lag_weight`): a fast operation is polled about once, at about two
            medians, and a slow one (3-D Secure, at minutes) at most 8.5 times,
            noticed within about a ninth of its median. The default, a quarter
            of a second, is what a poller every 0.5 s gets; followed on
            lognormal times with sigma 1, the plan spends 0.72 x its requests
            for a median of 0.2 s, 0.78 x for 0.5 s, 0.82 x for 1 s, and 0.88 x
            for 2 s (where even the plan for the true distribution needs 0.85 x
            to match its lag).
        lag_weight: instead of `target_lag`, what a delay of one median
            processing time in noticing a result is worth in polls, the same
            for every operation. Higher polls more and notices sooner. Followed
            from the start on lognormal times with sigma 1, 4 spends 3.5
            requests per job (the submit included) for a lag p50 of 0.43
            medians, 8 spends 4.1 for 0.31, 16 spends 5.1 for 0.22.
    """

    first_delay: float = attrs.field(default=0.6, validator=_positive)
    factor: float = attrs.field(default=1.35, validator=_positive)
    max_delay: float = attrs.field(default=30.0, validator=_positive)
    jitter: float = attrs.field(default=0.1, validator=_non_negative)
    max_retry_after: float = attrs.field(default=300.0, validator=_positive)
    min_retry_after: float = attrs.field(default=1.0, validator=_non_negative)
    status_first: bool = False
    adaptive: bool = True
    target_lag: float = attrs.field(default=0.25, validator=_positive)
    lag_weight: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive)
    )

    def __attrs_post_init__(self) -> None:
        if self.factor < 1:
            raise InvalidRequest("PollPolicy.factor", f"must be >= 1, not {self.factor!r}")
        if self.jitter >= 1:
            raise InvalidRequest("PollPolicy.jitter", f"must be below 1, not {self.jitter!r}")
        if self.max_delay < self.first_delay:
            raise InvalidRequest("PollPolicy.max_delay", "must not be below first_delay")
        if self.min_retry_after > self.max_retry_after:
            raise InvalidRequest("PollPolicy.min_retry_after", "must not be above max_retry_after")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Return the delay before poll number ``attempt + 1`` (``attempt`` counts from 0).

        Args:
            attempt: how many polls of the job were already made.
            rng: the source of jitter (seeded in tests).

        Returns:
            Seconds to wait, jitter included.
        """
        base = min(self.max_delay, self.first_delay * self.factor ** min(attempt, 64))
        if self.jitter:
            base *= 1.0 + self.jitter * (2.0 * rng.random() - 1.0)
        return base


@attrs.frozen(kw_only=True)
class Timeouts:
    """Per-request HTTP timeouts, in seconds (see `httpx.Timeout`), and one for the whole request.

    The async mode exists so that no request waits for the bank: the
    acknowledgement and every poll answer at once, so these can be short.
    The defaults bound every request by ``total`` (30 s, as the bePaid
    Python client's one timeout); ``read`` only adds something below it
    (the aiohttp engine then re-arms a timer on every chunk read, about a
    sixth of its CPU per request, so at or above ``total`` it arms none).
    ``pool`` stays below ``total``, so a request that never got a
    connection ends as `httpx.PoolTimeout` (nothing sent).

    Attributes:
        connect: to open a connection.
        read: between two reads of the answer (adds nothing at or above ``total``).
        write: between two writes of the request.
        pool: to get a connection from the pool (outside ``total`` on the
            httpx engine; inside it on the aiohttp one, as aiohttp counts it).
        total: the whole request, from sending to the last byte of the answer:
            an answer that trickles in a byte at a time ends here. A poll that
            hits it is retried; a submit is re-sent with its ``RequestID``
            (it may have arrived).
    """

    connect: float = attrs.field(default=5.0, validator=_positive)
    read: float = attrs.field(default=30.0, validator=_positive)
    write: float = attrs.field(default=10.0, validator=_positive)
    pool: float = attrs.field(default=20.0, validator=_positive)
    total: float = attrs.field(default=30.0, validator=_positive)


@attrs.frozen(kw_only=True)
class Limits:
    """How much a `Gateway` does at once.

    Attributes:
        polls_per_host: polls in flight to one gateway host at a time; the
            scheduler fires every due poll of a host up to this cap. 64 keeps
            10 000 pending jobs polled on time (16 let lag p50 grow from
            0.4 to 1-3.5 s at N = 10 000 in the load benchmark).
        concurrent_submits: submit POSTs in flight at a time; more callers
            wait their turn in the client, not in the connection pool.
        max_connections: size of the HTTP connection pool: room for every
            poll and submit in flight, and no more (httpcore's pool
            bookkeeping grows with its size).
        submit_attempts: how many times one submit is sent (always with the
            same ``RequestID``) when its outcome is unknown.
        max_answer_bytes: the most of one answer that is read (1 MiB; a
            transaction is a few KB). A longer answer to a poll ends that job
            with `MalformedResponse`; to a submit, it counts as no answer (the
            submit is re-sent with its ``RequestID``).
    """

    polls_per_host: int = attrs.field(default=64, validator=_positive_int)
    concurrent_submits: int = attrs.field(default=16, validator=_positive_int)
    max_connections: int = attrs.field(default=80, validator=_positive_int)
    submit_attempts: int = attrs.field(default=3, validator=_positive_int)
    max_answer_bytes: int = attrs.field(default=1 << 20, validator=_positive_int)


def check_arguments(**given: object) -> None:
    """Check the arguments of `Gateway` that are not checked by their own types.

    Raises:
        InvalidRequest: naming the first argument that is wrong.
    """
    shop_id, secret_key = given["shop_id"], given["secret_key"]
    if isinstance(shop_id, bool) or not isinstance(shop_id, int | str) or not str(shop_id):
        raise InvalidRequest("shop_id", "must be a non-empty integer or string")
    if not isinstance(secret_key, str) or not secret_key:
        raise InvalidRequest("secret_key", "must be a non-empty string")
    for name, cls in (
        ("poll", PollPolicy),
        ("webhook_poll", PollPolicy),
        ("timeouts", Timeouts),
        ("limits", Limits),
    ):
        if given[name] is not None and not isinstance(given[name], cls):
            raise InvalidRequest(name, f"must be a {cls.__name__}")
    transport = given["transport"]
    if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
        raise InvalidRequest("transport", "must be an httpx.AsyncBaseTransport")
    if given["http"] not in ("auto", "httpx", "aiohttp"):
        raise InvalidRequest("http", f"must be 'auto', 'httpx' or 'aiohttp', not {given['http']!r}")
    if given["api_version"] not in (None, 2, 3):
        raise InvalidRequest("api_version", f"must be 2, 3 or None, not {given['api_version']!r}")
    if given["clock"] is not None and not callable(given["clock"]):
        raise InvalidRequest("clock", "must return epoch seconds when called")
    if given["on_event"] is not None and not callable(given["on_event"]):
        raise InvalidRequest("on_event", "must be callable with one event")


def origin_of(url: str) -> tuple[str, str, int]:
    """Return the (scheme, host, port) origin of an absolute URL, default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"https": 443, "http": 80}.get(scheme, 0)
    return (scheme, (parts.hostname or "").lower(), port)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_base_url(url: object, *, allow_insecure_http: bool) -> str:
    """Check a gateway base URL and return it without a trailing slash.

    Plain ``http`` is accepted for loopback hosts (the bundled simulator) or
    when ``allow_insecure_http`` is set: it would send the secret key in clear.
    """
    if not isinstance(url, str):
        raise InvalidRequest("base_url", f"must be a string, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise InvalidRequest("base_url", f"must be an absolute http(s) URL, not {url!r}")
    if parts.username or parts.password:
        raise InvalidRequest("base_url", "must not carry credentials; pass shop_id and secret_key")
    if parts.query or parts.fragment:
        raise InvalidRequest("base_url", "must not have a query or fragment")
    if parts.scheme == "http" and not (allow_insecure_http or _is_loopback(parts.hostname)):
        raise InvalidRequest(
            "base_url",
            "plain http would send the secret key in clear; use https "
            "(or allow_insecure_http=True for a test server)",
        )
    return url.rstrip("/")
