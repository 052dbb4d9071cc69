"""The README's samples, run as a reader would run them against the simulator."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from webhook_helpers import loopback_socket, serving

import begateway_async as bga
from begateway_async.testing import DEMO_SHOPS, spawn

README = Path(__file__).resolve().parents[2] / "README.md"


def _block_after(marker: str, fence: str) -> str:
    """The first ``fence`` code block after the text ``marker``."""
    text = README.read_text()
    found = re.search(re.escape(marker) + r".*?```" + fence + r"\n(.*?)```", text, re.DOTALL)
    assert found is not None, f"no {fence} block after {marker!r}"
    return found.group(1)


async def _parent_and_token(url: str, amount: int = 5000) -> tuple[str, str]:
    """A successful payment to refund, and a card token to pay with (what the reader fills in)."""
    async with bga.Gateway(url, 361, DEMO_SHOPS["361"], http="httpx") as gw:
        card = bga.CreditCard(number="4200000000000000", exp_month=1, exp_year=2030)
        paid = await gw.payment(
            bga.Payment(amount=amount, currency="EUR", description="to refund", credit_card=card)
        )
        tokenized = await gw.tokenization(
            bga.Tokenization(amount=amount, currency="EUR", description="token", credit_card=card)
        )
    assert tokenized.card is not None
    assert tokenized.card.token is not None
    return paid.uid, tokenized.card.token


def test_the_batch_runner_sample_runs_as_shown(tmp_path: Path):
    """The JSONL lines of the README, their placeholders filled in, each give a transaction."""
    sample = _block_after("is the batch runner", "json")
    with spawn(["--median", "0.05", "--p99", "0.2"]) as url:
        parent, token = anyio.run(_parent_and_token, url)
        filled = sample.replace('"dd6ee60c-…"', json.dumps(parent)).replace(
            '"…"', json.dumps(token)
        )
        assert "…" not in filled  # every placeholder was one of these two
        source = tmp_path / "jobs.jsonl"
        source.write_text(filled)
        out = tmp_path / "results.jsonl"
        env = {**os.environ, "BEGATEWAY_URL": url, "BEGATEWAY_SHOP_ID": "361"}
        env["BEGATEWAY_SECRET_KEY"] = DEMO_SHOPS["361"]
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "begateway_async", "run", str(source), "--out", str(out)],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answers = sorted((json.loads(line) for line in out.read_text().splitlines()), key=str)
    assert [a["ok"] for a in answers] == [True] * len(sample.strip().splitlines())
    kinds = {a["result"].get("transaction", a["result"])["type"] for a in answers}
    assert kinds == {"refund", "payment"}


def test_the_script_quickstart_refunds_each_row_of_its_csv(tmp_path: Path):
    """The README's `refund_all.py`, saved as it is, run with a CSV of two payments to refund."""
    script = tmp_path / "refund_all.py"
    script.write_text(_block_after("## Quickstart: a script submitting many", "python"))
    with spawn(["--median", "0.05", "--p99", "0.2"]) as url:
        first, _ = anyio.run(_parent_and_token, url, 5001)  # not a duplicate of each other
        second, _ = anyio.run(_parent_and_token, url, 5002)
        rows = tmp_path / "refunds.csv"
        rows.write_text(f"{first},1000\n{second},2000\n")
        env = {**os.environ, "BEGATEWAY_URL": url, "BEGATEWAY_SHOP_ID": "361"}
        env["BEGATEWAY_SECRET_KEY"] = DEMO_SHOPS["361"]
        done = subprocess.run(  # noqa: S603
            [sys.executable, str(script), str(rows)],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == sorted(
        [f"{first} successful", f"{second} successful"]
    )


def test_the_web_quickstart_pays_an_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The README's `app.py`, saved as it is, served, and asked to pay one order by token."""
    source = _block_after("## Quickstart: a web app awaiting one payment", "python")
    with spawn(["--median", "0.05", "--p99", "0.2"]) as url:
        _, token = anyio.run(_parent_and_token, url, 6001)
        monkeypatch.setenv("BEGATEWAY_URL", url)
        monkeypatch.setenv("BEGATEWAY_SHOP_ID", "361")
        monkeypatch.setenv("BEGATEWAY_SECRET_KEY", DEMO_SHOPS["361"])
        app = tmp_path / "app.py"
        app.write_text(source)
        namespace = runpy.run_path(str(app))  # as `uvicorn app:app` imports it

        async def order() -> dict[str, object]:
            async with (
                serving(namespace["app"], loopback_socket()) as shop,  # its lifespan runs
                httpx.AsyncClient(base_url=shop) as client,
            ):
                answer = await client.post(
                    "/pay", json={"id": 7, "amount_cents": 3245, "card_token": token}
                )
            payload: dict[str, object] = answer.json()
            return payload

        answer = anyio.run(order)
    assert answer["state"] == "successful"
    assert isinstance(answer["uid"], str)
