"""Never executed: exercises the public API under mypy --strict, so its types stay right."""

from __future__ import annotations

import begateway_async as bga
from begateway_async.testing import VirtualClock


async def web_app(card: bga.CreditCard) -> str | None:
    async with bga.Gateway(bga.UNONAPAY, shop_id=361, secret_key="secret") as gw:
        tx: bga.Transaction = await gw.payment(
            bga.Payment(amount=100, currency="USD", description="Order 42", credit_card=card)
        )
        status: bga.TransactionStatus = tx.status
        if status == bga.TransactionStatus.INCOMPLETE:
            return tx.redirect_url
        return tx.uid


async def batch(parent_uids: list[str]) -> list[bga.Transaction]:
    clock = VirtualClock()
    results: list[bga.Transaction] = []
    async with bga.Gateway(
        bga.PAYCROSS,
        shop_id="361",
        secret_key="secret",
        clock=clock,
        poll=bga.PollPolicy(first_delay=1.0, status_first=True),
        limits=bga.Limits(polls_per_host=8),
        timeouts=bga.Timeouts(read=30.0),
    ) as gw:
        jobs: list[bga.Job[bga.Transaction]] = [
            await gw.submit(bga.Refund(parent_uid=uid, amount=100, reason="return"))
            for uid in parent_uids
        ]
        async for job in gw.as_completed(jobs):
            try:
                results.append(await job)
            except bga.JobFailed as exc:
                _: int = exc.status_code
            except bga.JobError as exc:
                tracking: str | None = exc.tracking_id
                del tracking
        token: str = jobs[0].token()
        resumed: bga.Job[object] = gw.resume(token)
        del resumed
        txs: list[bga.Transaction] = await gw.transactions_by_tracking_id("order-42")
        balance: bga.Balance = await gw.balance(bga.BalanceQuery(currency="USD"))
        del txs, balance
        one: bga.Transaction = await jobs[0].result(timeout=5.0)
        del one
    return results
