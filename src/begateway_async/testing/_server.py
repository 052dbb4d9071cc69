"""Running the simulator: in process through httpx, or on loopback under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal, TextIO

import httpx

from ._simulator import ConnectionDropped

__all__ = ["SimulatorTransport", "run_server", "serve", "serve_here", "spawn"]

READY = "begateway-async simulator listening on "


class SimulatorTransport(httpx.AsyncBaseTransport):
    """`httpx.ASGITransport` for the simulator, with its dropped connections as httpx errors.

    Pass it as ``Gateway(..., transport=SimulatorTransport(simulator))``: no sockets.
    """

    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` to the app."""
        try:
            return await self._inner.handle_async_request(request)
        except ConnectionDropped as exc:
            raise httpx.RemoteProtocolError(
                "the simulator dropped the connection", request=request
            ) from exc

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()


def _loopback_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it. Without it every keep-alive answer
    # (headers and body written apart) waits ~40 ms for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def serve(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 10.0
) -> Iterator[str]:
    """Serve ``app`` under uvicorn on loopback in a background thread; yield its base URL.

    ``port=0`` picks a free port. Leaving the block stops the server. Needs
    the ``simulator`` extra (uvicorn).
    """
    server = _uvicorn_server(app)
    sock = _loopback_socket(host, port)
    bound_port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the simulator's server did not start")
        time.sleep(0.01)
    try:
        yield _url(host, bound_port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextlib.asynccontextmanager
async def serve_here(app: Any, *, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``app`` under uvicorn on loopback in this (asyncio) event loop; yield its base URL.

    For an app that must share the loop with the code under test, such as a
    `WebhookEndpoint` next to its `Gateway`. A free port is picked. Needs the
    ``simulator`` extra (uvicorn).
    """
    server = _uvicorn_server(app)
    sock = _loopback_socket(host, 0)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:  # uvicorn offers no event for it
            if task.done():
                task.result()  # its startup error
                raise RuntimeError("the server did not start")
            await asyncio.sleep(0.005)
        yield _url(host, sock.getsockname()[1])
    finally:
        server.should_exit = True
        await task
        sock.close()


def _uvicorn_server(app: Any, *, lifespan: Literal["on", "off"] = "off") -> Any:
    try:
        import uvicorn  # noqa: PLC0415 - an optional extra
    except ImportError as exc:
        raise ModuleNotFoundError(
            'install "begateway-async[simulator]" to serve over HTTP', name="uvicorn"
        ) from exc
    # The simulator counts what it serves; the server's own error log would
    # only repeat the connections it drops on purpose.
    config = uvicorn.Config(
        app, log_level="critical", lifespan=lifespan, access_log=False, timeout_graceful_shutdown=1
    )
    return uvicorn.Server(config)


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def run_server(
    app: Any, *, host: str = "127.0.0.1", port: int = 8080, out: TextIO | None = None
) -> None:
    """Serve ``app`` in the foreground until Ctrl-C (SIGINT) or SIGTERM.

    Prints one line, ``begateway-async simulator listening on <url>``, once
    the socket accepts connections (``port=0`` picks a free port). The app's
    lifespan runs: the simulator sends its notifications (to loopback URLs).
    """
    server = _uvicorn_server(app, lifespan="on")
    sock = _loopback_socket(host, port)
    stream = out or sys.stdout
    stream.write(READY + _url(host, sock.getsockname()[1]) + "\n")
    stream.flush()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


@contextlib.contextmanager
def spawn(arguments: Sequence[str] = (), *, startup_timeout: float = 30.0) -> Iterator[str]:
    """Run ``begateway-async simulate --port 0 [arguments]`` in a child process; yield its URL.

    The simulator then has a process (and a core) of its own, as a real
    gateway would. Leaving the block stops it with SIGINT.
    """
    command = [sys.executable, "-m", "begateway_async", "simulate", "--port", "0", *arguments]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)  # noqa: S603
    try:
        assert process.stdout is not None  # noqa: S101 - piped above
        deadline = time.monotonic() + startup_timeout
        line = ""
        while not line.startswith(READY):
            line = process.stdout.readline()
            if (not line and process.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError("the simulator process did not start")
        yield line[len(READY) :].strip()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
