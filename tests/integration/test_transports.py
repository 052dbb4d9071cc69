"""The HTTP engines: httpx's default and the aiohttp-backed transport, and how failures map."""

from __future__ import annotations

import socket

import anyio
import httpx
import pytest
import sniffio

import begateway_async as bga
from begateway_async._transports import _AiohttpTransport, choose_transport
from begateway_async.testing import DEMO_SHOPS, Fixed, Simulator, serve

pytestmark = pytest.mark.anyio

LIMITS = httpx.Limits(max_connections=4)


async def test_auto_picks_aiohttp_on_asyncio_only():
    """`auto` sends through aiohttp on asyncio (the extra is installed here), httpx on Trio."""
    chosen = choose_transport("auto", LIMITS)
    if sniffio.current_async_library() == "asyncio":
        assert isinstance(chosen, _AiohttpTransport)
        await chosen.aclose()
    else:
        assert chosen is None
        with pytest.raises(bga.InvalidRequest, match="asyncio only"):
            choose_transport("aiohttp", LIMITS)
    assert choose_transport("httpx", LIMITS) is None


@pytest.mark.parametrize("http", ["httpx", "auto"])
async def test_both_engines_pay(http):
    """A payment goes through either engine against the simulator on loopback."""
    with serve(Simulator(processing=Fixed(0.05))) as url:
        async with bga.Gateway(url, 361, DEMO_SHOPS["361"], http=http) as gw:
            tx = await gw.payment(
                bga.Payment(
                    amount=100,
                    currency="USD",
                    description="x",
                    credit_card=bga.CreditCard(
                        number="4200000000000000", exp_month=1, exp_year=2030
                    ),
                )
            )
    assert tx.successful


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("http", ["httpx", "auto"])
async def test_refused_connection_is_not_sent(http):
    """Connection refused means nothing was sent, on either engine: TransportError, no guess."""
    url = f"http://127.0.0.1:{_closed_port()}"
    async with bga.Gateway(url, 361, DEMO_SHOPS["361"], http=http) as gw:
        with pytest.raises(bga.TransportError, match="nothing was sent"):
            await gw.submit(bga.StatusQuery(uid="u1"))


async def test_a_hang_up_after_sending_is_never_called_not_sent():
    """A server that reads the request and hangs up: the submit is indeterminate, not 'not sent'."""
    engine = "aiohttp" if sniffio.current_async_library() == "asyncio" else "httpx"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)  # noqa: FBT003
    port = server.getsockname()[1]

    async def hang_up() -> None:
        while True:
            await anyio.wait_readable(server)
            conn, _ = server.accept()
            conn.setblocking(False)  # noqa: FBT003
            await anyio.wait_readable(conn)
            conn.recv(65536)
            conn.close()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(hang_up)
            async with bga.Gateway(
                f"http://127.0.0.1:{port}",
                361,
                DEMO_SHOPS["361"],
                http=engine,
                poll=bga.PollPolicy(first_delay=0.01, max_delay=0.05),
            ) as gw:
                with pytest.raises(bga.SubmitIndeterminate):
                    await gw.submit(bga.StatusQuery(uid="u1"))
            tg.cancel_scope.cancel()
    finally:
        server.close()
