"""Test helpers for users of begateway-async, and the bundled gateway simulator.

- `VirtualClock` runs the client's timing (and the simulator's) on virtual time.
- `Simulator` is an ASGI app that behaves like the gateway; use it in process
  with `SimulatorTransport`, or on loopback: `serve` (a background thread),
  `serve_here` (this event loop, asyncio), `spawn` (a child process),
  `run_server` (the foreground), or ``begateway-async simulate --port 8080``.
- `Faults` and `Fault` switch on the gateway's misbehaviours; `Fixed`,
  `Uniform`, `LogNormal` and `FromRequest` set how long the bank takes.
"""

from ._books import CARDS
from ._clock import VirtualClock, settle
from ._distributions import Distribution, Fixed, FromRequest, LogNormal, Uniform
from ._faults import Fault, Faults
from ._postgres import NoServerError, postgres_cluster
from ._server import SimulatorTransport, run_server, serve, serve_here, spawn
from ._simulator import DEMO_SHOPS, JobStats, Simulator, Stats, default_processing

__all__ = [
    "CARDS",
    "DEMO_SHOPS",
    "Distribution",
    "Fault",
    "Faults",
    "Fixed",
    "FromRequest",
    "JobStats",
    "LogNormal",
    "NoServerError",
    "Simulator",
    "SimulatorTransport",
    "Stats",
    "Uniform",
    "VirtualClock",
    "default_processing",
    "postgres_cluster",
    "run_server",
    "serve",
    "serve_here",
    "settle",
    "spawn",
]
