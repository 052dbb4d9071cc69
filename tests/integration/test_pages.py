"""The simulator's pages in a real browser: headless Chromium, driven by Playwright.

Chromium is Debian's (``/usr/bin/chromium``; ``.ci/run`` installs it where it
is missing). Outside CI a machine without it skips these tests, saying why;
under ``CI=true`` a missing browser fails them.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import pytest

import begateway_async as bga
from begateway_async.testing import DEMO_SHOPS, Fixed, Simulator, serve

T = TypeVar("T")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: As the machine's notes say: no background networking (its connections are refused here).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401, PLC0415
    except ImportError:
        return "playwright is not installed (pip install -e '.[tests]')"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests: {reason}")
        print(f"skipping the browser tests: {reason}")  # noqa: T201 - the reason, shown with -s
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as driver:  # a fresh, empty profile of its own
        chromium = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _three_d_secure_payment(url: str, number: str, return_url: str | None) -> bga.Transaction:
    """A payment by a 3-D Secure test card through the Gateway: incomplete, with a redirect_url."""

    async def pay() -> bga.Transaction:
        async with bga.Gateway(url, 361, DEMO_SHOPS["361"], http="httpx") as gw:
            card = bga.CreditCard(number=number, exp_month=1, exp_year=2030)
            return await gw.payment(
                bga.Payment(
                    amount=1999,
                    currency="EUR",
                    description="Order 7",
                    tracking_id="order-7",
                    credit_card=card,
                    return_url=return_url,
                )
            )

    return _in_a_thread(pay)


def test_the_home_page_says_what_the_simulator_is(browser):
    with serve(Simulator()) as url:
        tab = browser.new_page()
        tab.goto(f"{url}/")
        assert tab.title() == "beGateway simulator"
        text = tab.inner_text("body")
        assert "361" in text
        assert DEMO_SHOPS["361"] in text  # the demo shop's secret: public, for the samples
        assert "4012000000001097" in text
        tab.click("#public-key")  # the link leads to the key that verifies notifications
        assert "BEGIN PUBLIC KEY" in tab.inner_text("body")
        tab.close()


@pytest.mark.parametrize(("button", "final"), [("Approve", "successful"), ("Decline", "failed")])
def test_the_3ds_page_approves_or_declines_and_sends_the_customer_back(browser, button, final):
    """The redirect_url shows the amount; a click ends 3-D Secure and goes to the return_url."""
    with serve(Simulator(processing=Fixed(0.01))) as url:
        back = f"{url}/?order=7"  # any page of ours will do as the shop's return page
        tx = _three_d_secure_payment(url, "4012000000001097", back)
        assert tx.incomplete
        assert tx.redirect_url is not None
        tab = browser.new_page()
        tab.goto(tx.redirect_url)
        assert tab.inner_text("#amount") == "19.99 EUR"
        tab.click(f"text={button}")
        tab.wait_for_url(f"{url}/?order=7&*")
        assert f"uid={tx.uid}" in tab.url
        assert f"status={final}" in tab.url
        tab.close()
        status = httpx.get(f"{url}/_simulator/stats", timeout=10)  # the simulator is still up
        assert status.status_code == 200
        assert _status(url, tx.uid) == final


def test_without_a_return_url_the_page_shows_the_result(browser):
    with serve(Simulator(processing=Fixed(0.01))) as url:
        tx = _three_d_secure_payment(url, "4012000000001022", None)  # 3-D Secure, then declined
        assert tx.redirect_url is not None
        tab = browser.new_page()
        tab.goto(tx.redirect_url)
        tab.click("text=Approve")
        assert tab.inner_text("#status") == "failed"  # the card's own outcome
        tab.goto(tx.redirect_url)  # back again: how it stands, no second completion
        assert tab.inner_text("#status") == "failed"
        tab.close()


def _status(url: str, uid: str) -> str:
    async def look() -> str:
        async with bga.Gateway(url, 361, DEMO_SHOPS["361"], http="httpx") as gw:
            return (await gw.transaction(uid)).status

    return _in_a_thread(look)


def _in_a_thread(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main`` in an event loop of its own (Playwright's sync API holds this thread's)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, main).result(timeout=60)
