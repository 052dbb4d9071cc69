"""For the webhook tests: loopback servers in the test's own loop, and what the tests count."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import sniffio
from hypercorn.config import Config

import begateway_async as bga
from begateway_async.testing import Simulator


def polls(simulator: Simulator, job: bga.Job[Any]) -> int:
    """Status and result polls the simulator served for ``job``."""
    stats = simulator.stats.jobs[job.request_id]
    return stats.status_polls + stats.result_polls


def count_ends(jobs: list[bga.Job[Any]]) -> Counter[str]:
    """A counter, filled by done callbacks, of how many times each job ended."""
    ends: Counter[str] = Counter()
    for job in jobs:
        job.add_done_callback(lambda j: ends.update([j.request_id]))
    return ends


def loopback_socket() -> socket.socket:
    """A socket listening on a free 127.0.0.1 port (``http://127.0.0.1:{port}`` once served).

    It listens already: a client that connects before the server runs waits in
    the backlog, so nobody has to poll for the server to be up.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@asynccontextmanager
async def serving(app: Any, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Serve ``app`` under hypercorn on 127.0.0.1 in this event loop; yield its URL.

    ``sock`` is a socket from `loopback_socket` (to know the URL before the
    app is made); a free port by default.
    """
    sock = sock or loopback_socket()
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.loglevel = "WARNING"
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0
    stop = anyio.Event()
    if sniffio.current_async_library() == "trio":
        from hypercorn.trio import serve  # noqa: PLC0415
    else:
        from hypercorn.asyncio import serve  # type: ignore[assignment]  # noqa: PLC0415
    started = anyio.Event()

    async def observed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def sending(message: Any) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                started.set()

        await app(scope, receive, sending)

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve(observed, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        with anyio.fail_after(10):
            await started.wait()  # the app's lifespan started: it serves from now on
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            stop.set()
