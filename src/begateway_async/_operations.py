"""The submit-and-wait methods of `Gateway`, one per operation."""

from __future__ import annotations

import abc
from typing import TypeVar

from ._errors import InvalidRequest
from ._jobs import Job, check_timeout
from ._models import Balance, Transaction
from ._requests import (
    Authorization,
    BalanceQuery,
    Capture,
    Chargeback,
    Checkup,
    Payment,
    Payout,
    Refund,
    Request,
    StatusQuery,
    Tokenization,
    TrackingIdQuery,
    Void,
)

__all__ = ["Operations"]

T = TypeVar("T")


class Operations(abc.ABC):
    """``gw.payment(...)``, ``gw.refund(...)``, ...: submit one request and wait for its result.

    Each takes ``timeout`` (seconds to wait, on the Gateway's clock; the job
    goes on after it) and ``idempotency_key`` (the ``RequestID`` to send, as
    for `submit`: the same key within 24 hours never makes a second task).
    """

    @abc.abstractmethod
    async def submit(self, request: Request[T], *, idempotency_key: str | None = None) -> Job[T]:
        """Send ``request`` in async mode; return its job once acknowledged."""

    async def run(
        self,
        request: Request[T],
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> T:
        """Submit ``request`` and wait for its result (see `submit` and `Job.result`).

        ``timeout`` is checked before anything is sent: a wrong one never
        leaves a payment under way with nobody waiting for it.
        """
        check_timeout(timeout)
        job = await self.submit(request, idempotency_key=idempotency_key)
        return await job.result(timeout)

    async def _run_as(
        self,
        cls: type[Request[T]],
        request: Request[T],
        timeout: float | None,
        idempotency_key: str | None,
    ) -> T:
        if not isinstance(request, cls):
            raise InvalidRequest("request", f"must be a {cls.__name__}")
        return await self.run(request, timeout=timeout, idempotency_key=idempotency_key)

    async def payment(
        self, request: Payment, *, timeout: float | None = None, idempotency_key: str | None = None
    ) -> Transaction:
        """Submit a `Payment` and wait for its transaction."""
        return await self._run_as(Payment, request, timeout, idempotency_key)

    async def authorization(
        self,
        request: Authorization,
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Transaction:
        """Submit an `Authorization` and wait for its transaction."""
        return await self._run_as(Authorization, request, timeout, idempotency_key)

    async def tokenization(
        self,
        request: Tokenization,
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Transaction:
        """Submit a `Tokenization` and wait for its transaction (``card.token``)."""
        return await self._run_as(Tokenization, request, timeout, idempotency_key)

    async def capture(
        self, request: Capture, *, timeout: float | None = None, idempotency_key: str | None = None
    ) -> Transaction:
        """Submit a `Capture` and wait for its transaction."""
        return await self._run_as(Capture, request, timeout, idempotency_key)

    async def void(
        self, request: Void, *, timeout: float | None = None, idempotency_key: str | None = None
    ) -> Transaction:
        """Submit a `Void` and wait for its transaction."""
        return await self._run_as(Void, request, timeout, idempotency_key)

    async def refund(
        self, request: Refund, *, timeout: float | None = None, idempotency_key: str | None = None
    ) -> Transaction:
        """Submit a `Refund` and wait for its transaction."""
        return await self._run_as(Refund, request, timeout, idempotency_key)

    async def payout(
        self, request: Payout, *, timeout: float | None = None, idempotency_key: str | None = None
    ) -> Transaction:
        """Submit a `Payout` and wait for its transaction."""
        return await self._run_as(Payout, request, timeout, idempotency_key)

    async def chargeback(
        self,
        request: Chargeback,
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Transaction:
        """Submit a `Chargeback` and wait for its transaction."""
        return await self._run_as(Chargeback, request, timeout, idempotency_key)

    async def checkup(
        self, request: Checkup, *, timeout: float | None = None, idempotency_key: str | None = None
    ) -> Transaction:
        """Submit a `Checkup` and wait for its transaction."""
        return await self._run_as(Checkup, request, timeout, idempotency_key)

    async def transaction(self, uid: str, *, timeout: float | None = None) -> Transaction:
        """Query one transaction's current state by ``uid``.

        Raises:
            TransactionNotFound: the gateway has no transaction ``uid``.
        """
        return await self.run(StatusQuery(uid=uid), timeout=timeout)

    async def transactions_by_tracking_id(
        self, tracking_id: str, *, timeout: float | None = None
    ) -> list[Transaction]:
        """Return the transactions carrying ``tracking_id`` (at most 10, newest first)."""
        return await self.run(TrackingIdQuery(tracking_id=tracking_id), timeout=timeout)

    async def balance(
        self,
        request: BalanceQuery,
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Balance:
        """Submit a `BalanceQuery` and wait for the balance."""
        return await self._run_as(BalanceQuery, request, timeout, idempotency_key)
