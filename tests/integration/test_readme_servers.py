"""The README's apps and workers: the webhook app, a worker per process on PostgreSQL, a standby."""

from __future__ import annotations

import runpy
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import psycopg
import pytest
from readme_helpers import QUICK, block_after, parent_and_token, run_script, shop_env
from webhook_helpers import loopback_socket, serving

import begateway_async as bga
from begateway_async.testing import spawn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


class Answers:
    """An ASGI wrapper counting the statuses an app answered per path; ``wait`` for one."""

    def __init__(self, app: ASGI) -> None:
        self.app = app
        self.seen: Counter[tuple[str, int]] = Counter()
        self.changed = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; count the answer's status."""

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.seen[(scope["path"], message["status"])] += 1
                self.changed.set()
                self.changed = anyio.Event()
            await send(message)

        await self.app(scope, receive, sending if scope["type"] == "http" else send)

    async def wait(self, path: str, status: int) -> None:
        """Return once ``path`` was answered ``status`` (at once if it was already)."""
        while not self.seen[(path, status)]:
            await self.changed.wait()


@pytest.fixture
def database(pg_dsn: str) -> Iterator[str]:
    """A database of its own on the suite's throwaway cluster, as a reader's PAYMENTS_DB."""
    name = f"readme_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield pg_dsn.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _load(tmp_path: Path, name: str, source: str) -> dict[str, Any]:
    """Save a sample as ``name`` and import it, as ``uvicorn name:app`` does."""
    path = tmp_path / name
    path.write_text(source)
    return runpy.run_path(str(path))


def test_the_webhook_app_verifies_a_signed_notification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`notify.py` with the simulator's public key answers its signed notification 200."""
    with spawn(QUICK) as url:
        key = httpx.get(f"{url}/_simulator/public_key").json()["public_key"]
        for name, value in shop_env(url, BEGATEWAY_PUBLIC_KEY=key).items():
            monkeypatch.setenv(name, value)
        sample = _load(tmp_path, "notify.py", block_after("## Webhooks and 3-D Secure"))
        app = Answers(sample["app"])

        async def pay() -> bga.Transaction:
            async with serving(app, loopback_socket()) as shop:  # the lifespan opens it
                gateway: bga.Gateway = sample["gateway"]
                card = bga.CreditCard(number="4200000000000000", exp_month="05", exp_year="2030")
                tx = await gateway.payment(
                    bga.Payment(
                        amount=4242, currency="USD", description="notified", credit_card=card,
                        notification_url=f"{shop}/begateway/notify",
                    )
                )  # fmt: skip
                with anyio.fail_after(30):
                    await app.wait("/begateway/notify", 200)  # verified and on record
                return tx

        tx = anyio.run(pay)
    assert tx.status == "successful"
    assert not [seen for seen in app.seen if seen[1] != 200]  # nothing refused


def test_two_workers_share_one_journal_and_a_notification_crosses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: str
):
    """The PostgreSQL `app.py` in two workers: A takes the payment, B gets its notification."""
    source = block_after("## Several workers, one set of jobs")
    with spawn(QUICK) as url:
        _, token = anyio.run(parent_and_token, url, 7001)
        for name, value in shop_env(url, PAYMENTS_DB=database).items():
            monkeypatch.setenv(name, value)
        a = _load(tmp_path, "app.py", source)
        b = Answers(_load(tmp_path, "app.py", source)["app"])  # a second worker's own module

        async def pay() -> dict[str, Any]:
            sock = loopback_socket()
            monkeypatch.setenv("SHOP_URL", f"http://127.0.0.1:{sock.getsockname()[1]}")
            async with (
                serving(b, sock),
                serving(a["app"], loopback_socket()) as worker_a,
                httpx.AsyncClient(base_url=worker_a, timeout=60) as client,
            ):
                answer = await client.post(
                    "/pay", json={"id": 8, "amount_cents": 1250, "token": token}
                )
                with anyio.fail_after(30):
                    await b.wait("/begateway/notify", 200)
            payload: dict[str, Any] = answer.json()
            return payload

        answer = anyio.run(pay)
    assert answer["state"] == "successful"
    with psycopg.connect(database) as c:
        ended = c.execute("SELECT count(*) FROM begateway.entries WHERE outcome IS NOT NULL")
        assert ended.fetchone() == (1,)  # one job, one end, whichever worker recorded it


DYING_WORKER = textwrap.dedent(
    """
    import os

    import anyio

    import begateway_async as bga


    async def main() -> None:
        journal = bga.PostgresJournal(os.environ["PAYMENTS_DB"], lease=2.0)
        async with bga.Gateway(
            os.environ["BEGATEWAY_URL"],
            shop_id=os.environ["BEGATEWAY_SHOP_ID"],
            secret_key=os.environ["BEGATEWAY_SECRET_KEY"],
            journal=journal,
        ) as gw:
            card = bga.CreditCard(number="4200000000000000", exp_month="05", exp_year="2030")
            payment = bga.Payment(amount=4321, currency="USD", description="x", credit_card=card)
            await gw.submit(payment, tag="order-77")
            print("submitted", flush=True)
            await anyio.sleep(600)


    anyio.run(main)
    """
)


def test_the_standby_worker_finishes_a_dead_workers_payment(tmp_path: Path, database: str):
    """A worker killed after its submit; `standby.py` takes the payment over and reports it."""
    standby = tmp_path / "standby.py"
    standby.write_text(block_after("on_take_over=callback"))
    dying = tmp_path / "dying.py"
    dying.write_text(DYING_WORKER)
    with spawn(["--median", "2", "--p99", "3"]) as url:
        env = shop_env(url, PAYMENTS_DB=database)
        worker = subprocess.Popen(  # noqa: S603
            [sys.executable, str(dying)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        watchdog = threading.Timer(60, worker.kill)
        watchdog.start()
        try:
            assert worker.stdout is not None
            assert worker.stdout.readline() == "submitted\n"
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        finally:
            watchdog.cancel()
        for pipe in (worker.stdout, worker.stderr):
            assert pipe is not None
            pipe.close()
        with psycopg.connect(database, autocommit=True) as c:  # its lease runs out now
            c.execute("UPDATE begateway.workers SET lease_until = now() - interval '1 second'")
        done = run_script(standby, "5", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["order-77 taken over: successful"]
