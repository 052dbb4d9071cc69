"""The README's Starlette shop, end to end over loopback: payment, 3-D Secure, webhook."""

from __future__ import annotations

import importlib.util
import random
import re
from pathlib import Path
from types import ModuleType

import anyio
import httpx
import pytest
from webhook_helpers import loopback_socket, serving

import begateway_async as bga
from begateway_async.testing import DEMO_SHOPS, Simulator

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
CARD = {"exp_month": 1, "exp_year": 2030, "verification_value": "123", "holder": "Jo Doe"}


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_shop", ROOT / "examples" / "shop.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_shows_the_example_as_it_is():
    source = (ROOT / "examples" / "shop.py").read_text()
    shown = re.search(r"# --- README: begin ---\n(.*?)# --- README: end ---", source, re.DOTALL)
    assert shown is not None
    readme = (ROOT / "README.md").read_text()
    assert shown.group(1).strip() in readme


async def _state(client: httpx.AsyncClient, order: str) -> str:
    answer = await client.get(f"/orders/{order}")
    assert answer.status_code == 200
    state: str = answer.json()["state"]
    return state


@pytest.mark.parametrize(
    ("number", "final"),
    [("4012000000001097", "successful"), ("4012000000001022", "failed")],
)
async def test_a_3ds_payment_learns_its_final_status_by_webhook(number: str, final: str):
    shop = example()
    simulator = Simulator(processing={"*": 0.1, "status_query": 0.0}, seed=1)
    sock = loopback_socket()
    shop_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with anyio.fail_after(30):
        async with serving(simulator) as gateway_url, simulator.notifying():
            gateway = bga.Gateway(
                gateway_url,
                361,
                DEMO_SHOPS["361"],
                webhook_key=simulator.public_key,
                rng=random.Random(1),
            )
            async with (
                serving(shop.create_app(gateway, shop_url), sock),
                httpx.AsyncClient(base_url=shop_url) as client,
            ):
                # A card without 3-D Secure: settled in the request.
                plain = {"number": "4200000000000000", **CARD}
                answer = await client.post(
                    "/orders", json={"amount": 500, "currency": "USD", "card": plain}
                )
                assert answer.status_code == 201
                assert answer.json()["state"] == "successful"

                card = {"number": number, **CARD}
                answer = await client.post(
                    "/orders", json={"amount": 1999, "currency": "USD", "card": card}
                )
                assert answer.status_code == 303
                redirect = answer.headers["location"]
                uid = redirect.rsplit("/process/", 1)[1]
                assert redirect == f"{gateway_url}/process/{uid}"
                order = (await gateway.transaction(uid)).tracking_id  # the shop's order id
                assert order is not None
                assert await _state(client, order) == "incomplete"

                # The customer passes 3-D Secure at the gateway; it notifies the shop.
                async with httpx.AsyncClient() as customer:
                    back = await customer.post(f"{gateway_url}/_simulator/3ds/{uid}")
                    assert back.json()["status"] == final
                # The shop answered 200 only once its handler had marked the order.
                await simulator.notifier.wait_for(
                    lambda sent: any(a.uid == uid and a.answer == 200 for a in sent)
                )
                assert await _state(client, order) == final
    delivered = [(a.uid, a.status, a.answer) for a in simulator.notifier.attempts if a.uid == uid]
    assert delivered == [(uid, final, 200)]


async def test_the_shop_answers_what_went_wrong_not_a_500():
    """Bad input is a 400 naming the field; a card the gateway refuses a 422 with its errors."""
    shop = example()
    simulator = Simulator(processing={"*": 0.05}, seed=2)
    sock = loopback_socket()
    shop_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with anyio.fail_after(30):
        async with serving(simulator) as gateway_url:
            gateway = bga.Gateway(gateway_url, 361, DEMO_SHOPS["361"], rng=random.Random(2))
            async with (
                serving(shop.create_app(gateway, shop_url), sock),
                httpx.AsyncClient(base_url=shop_url) as client,
            ):
                card = {"number": "4200000000000000", **CARD}
                expired = {**card, "exp_month": 1, "exp_year": 2010}
                answer = await client.post(
                    "/orders", json={"amount": 500, "currency": "USD", "card": expired}
                )
                assert answer.status_code == 422  # refused inside the task: a JobRejected
                assert "credit_card" in answer.json()["errors"]
                float_amount = {"amount": 19.99, "currency": "USD", "card": card}
                answer = await client.post("/orders", json=float_amount)
                assert answer.status_code == 400
                assert "amount" in answer.json()["error"]
                answer = await client.post("/orders", content=b"not json")
                assert answer.status_code == 400
                assert len(simulator.stats.jobs) == 1  # only the expired card reached it
