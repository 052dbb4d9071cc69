"""Fixtures for running the real client against the simulator."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import begateway_async as bga
from begateway_async.testing import (
    DEMO_SHOPS,
    Simulator,
    SimulatorTransport,
    VirtualClock,
    default_processing,
)

BASE = "https://gateway.simulator.test"
SECRET = DEMO_SHOPS["361"]


@pytest.fixture
def simulator(request: pytest.FixtureRequest, clock: VirtualClock) -> Simulator:
    """A simulator on the virtual clock; the bank takes 2 s for everything but queries.

    A test (or module) changes that with ``@pytest.mark.simulator(bank=600.0,
    three_d_secure_delay=60.0, ...)``: ``bank`` is the processing time of the
    operations, any other keyword goes to `Simulator`.
    """
    marker = request.node.get_closest_marker("simulator")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    bank = options.pop("bank", 2.0)
    return Simulator(clock=clock, processing=default_processing(bank), **options)


@pytest.fixture
def connect(simulator: Simulator, clock: VirtualClock):
    """Open a Gateway on the simulator, in process, on virtual time (jumping unless told not to)."""

    @asynccontextmanager
    async def factory(
        secret: str = SECRET, *, autojump: bool = True, **options: Any
    ) -> AsyncIterator[bga.Gateway]:
        options.setdefault("rng", random.Random(5))
        gateway = bga.Gateway(
            BASE, 361, secret, transport=SimulatorTransport(simulator), clock=clock, **options
        )
        if not autojump:  # time stands still (a journal's writes wait on real threads)
            async with gateway:
                yield gateway
            return
        async with clock.autojump(), gateway:
            yield gateway

    return factory
