"""Shared fixtures: both anyio backends, a virtual clock, a respx router, a Gateway factory."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
import respx

import begateway_async as bga
from begateway_async.testing import NoServerError, VirtualClock, postgres_cluster
from fakes import BASE, SECRET, SHOP_ID


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("trio", {}), id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Run every async test on asyncio and on trio."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def router() -> respx.MockRouter:
    """A respx router for the fake gateway; unmatched requests fail the test."""
    return respx.MockRouter(base_url=BASE, assert_all_called=False)


GatewayFactory = Callable[..., AbstractAsyncContextManager[bga.Gateway]]


@pytest.fixture
def open_gateway(router: respx.MockRouter, clock: VirtualClock) -> GatewayFactory:
    """Open a Gateway on the router, on virtual time (jumping by itself unless told not to)."""

    @asynccontextmanager
    async def factory(*, autojump: bool = True, **options: Any) -> AsyncIterator[bga.Gateway]:
        options.setdefault("transport", httpx.MockTransport(router.async_handler))
        options.setdefault("rng", random.Random(7))
        gateway = bga.Gateway(BASE, SHOP_ID, SECRET, clock=clock, **options)
        if autojump:
            async with clock.autojump(), gateway:
                yield gateway
        else:
            async with gateway:
                yield gateway

    return factory


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on loopback, one per test process.

    Without the server binaries the tests that need it skip, saying why;
    under ``CI=true`` that is a failure (`.ci/run` installs the server).
    """
    try:
        with postgres_cluster() as dsn:
            yield dsn
    except NoServerError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the PostgreSQL server: {exc}")
        pytest.skip(f"{exc} (these tests run in CI)")


@pytest.fixture
def pg_journal(pg_dsn: str) -> Iterator[Callable[..., bga.PostgresJournal]]:
    """Make PostgresJournals on one fresh schema (each a worker of its own); closed after."""
    schema = f"t{uuid.uuid4().hex[:12]}"
    made: list[bga.PostgresJournal] = []

    def factory(**options: Any) -> bga.PostgresJournal:
        options.setdefault("schema", schema)
        journal = bga.PostgresJournal(pg_dsn, **options)
        made.append(journal)
        return journal

    yield factory
    for journal in made:
        journal.close()
