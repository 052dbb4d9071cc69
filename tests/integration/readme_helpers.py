"""For the README's samples: the blocks themselves, and what a reader fills in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import begateway_async as bga
from begateway_async.testing import DEMO_SHOPS, spawn

README = Path(__file__).resolve().parents[2] / "README.md"
QUICK = ["--median", "0.05", "--p99", "0.2"]  # the simulator's bank, fast


def block_after(marker: str, fence: str = "python") -> str:
    """The first ``fence`` code block after the text ``marker``."""
    text = README.read_text()
    found = re.search(re.escape(marker) + r".*?```" + fence + r"\n(.*?)```", text, re.DOTALL)
    assert found is not None, f"no {fence} block after {marker!r}"
    return found.group(1)


def shop_env(url: str, **more: str) -> dict[str, str]:
    """The environment every sample reads: the simulator's URL and its first shop."""
    env = {**os.environ, "BEGATEWAY_URL": url, "BEGATEWAY_SHOP_ID": "361", **more}
    env["BEGATEWAY_SECRET_KEY"] = DEMO_SHOPS["361"]
    return env


def run_script(
    script: Path, *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a saved sample as ``python script args...``; bounded in time."""
    return subprocess.run(  # noqa: S603
        [sys.executable, str(script), *args],
        capture_output=True, text=True, env=env, timeout=120, check=False, cwd=cwd,
    )  # fmt: skip


def run_sample(tmp_path: Path, name: str, marker: str) -> subprocess.CompletedProcess[str]:
    """Save the block after ``marker`` as ``name`` and run it against a spawned simulator."""
    script = tmp_path / name
    script.write_text(block_after(marker))
    with spawn(QUICK) as url:
        done = run_script(script, env=shop_env(url))
    assert done.returncode == 0, done.stderr
    return done


def json_objects(text: str) -> list[Any]:
    """Every JSON object printed in ``text`` (a console exporter's output, among other lines)."""
    decoder, found = json.JSONDecoder(), []
    at = text.find("{")
    while at != -1:
        obj, end = decoder.raw_decode(text, at)
        found.append(obj)
        at = text.find("{", end)
    return found


async def parent_and_token(url: str, amount: int = 5000) -> tuple[str, str]:
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
