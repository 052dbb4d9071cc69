"""The clients under test, each run alone in a worker process against the simulator.

Every contender submits ``n`` payments as fast as it can, records when each
job's result reached the caller (epoch seconds, the simulator's clock too),
and reports its own CPU time, wall time and memory.

- ``ours``: `begateway_async.Gateway` with the given settings; with
  ``webhooks`` the payments carry a ``notification_url`` served by a
  `WebhookEndpoint` under uvicorn in the same process (its CPU counts).
- ``naive``: what users write today: one task per job, a fixed sleep, GET
  status_url until ``completed``, then GET response_url.
- ``oracle``: one task per job polling response_url on the plan that is
  optimal for the simulator's true distribution (it is told the distribution).
- ``floor``: the two requests a job cannot avoid: the submit, and one result
  fetch at the moment the simulator says the job is done (it is told).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

import begateway_async as bga
from begateway_async._cadence import lognormal_cdf, plan
from begateway_async.testing import DEMO_SHOPS, serve_here

SHOP, SECRET = "361", DEMO_SHOPS["361"]
PAYMENT_PATH = "/async/transactions/payments"


def _payment(n: int, notification_url: str | None = None) -> bga.Payment:
    return bga.Payment(
        amount=100 + n,
        currency="USD",
        description=f"Benchmark {n}",
        tracking_id=f"bench-{n}",
        credit_card=bga.CreditCard(number="4200000000000000", exp_month=1, exp_year=2030),
        duplicate_check=False,
        notification_url=notification_url,
    )


def _body(n: int) -> bytes:
    return json.dumps(
        {
            "request": {
                "amount": 100 + n,
                "currency": "USD",
                "description": f"Benchmark {n}",
                "tracking_id": f"bench-{n}",
                "duplicate_check": False,
                "credit_card": {
                    "number": "4200000000000000",
                    "exp_month": "01",
                    "exp_year": "2030",
                },
            }
        }
    ).encode()


def _rss_kib() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() // 1024


class Recorder:
    """Wake times, pending counts and memory of one run."""

    def __init__(self) -> None:
        self.woke: dict[str, float] = {}
        self.errors: list[str] = []
        self.pending = 0
        self.peak_pending = 0
        self.peak_rss_kib = 0

    def started(self) -> None:
        self.pending += 1
        self.peak_pending = max(self.peak_pending, self.pending)

    def finished(self, request_id: str) -> None:
        self.woke[request_id] = time.time()
        self.pending -= 1

    async def sample(self) -> None:
        while True:
            self.peak_rss_kib = max(self.peak_rss_kib, _rss_kib())
            await asyncio.sleep(0.05)


class _AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's API over our aiohttp engine: the baselines' clients on aiohttp's I/O."""

    def __init__(self, limits: httpx.Limits) -> None:
        from begateway_async._aiohttp import AiohttpEngine

        self._engine = AiohttpEngine(limits, httpx.Timeout(60.0), 60.0, 1 << 20)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self._engine.send(
            request.method, str(request.url), request.headers.multi_items(), request.content
        )
        return httpx.Response(
            answer.status_code, headers=list(answer.headers.items()), content=answer.content
        )

    async def aclose(self) -> None:
        await self._engine.aclose()


def _httpx_client(url: str, http: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    transport = _AiohttpTransport(limits) if http == "aiohttp" else None
    return httpx.AsyncClient(
        base_url=url,
        auth=(SHOP, SECRET),
        timeout=httpx.Timeout(60.0),
        transport=transport,
        limits=limits,
        headers={"content-type": "application/json"},
    )


class _Bounded:
    """An httpx client with at most ``limit`` requests in flight (our Gateway's own bound)."""

    def __init__(self, client: httpx.AsyncClient, limit: int | None) -> None:
        self._client = client
        self._gate = asyncio.Semaphore(limit) if limit else None

    async def post(self, url: str, content: bytes) -> httpx.Response:
        if self._gate is None:
            return await self._client.post(url, content=content)
        async with self._gate:
            return await self._client.post(url, content=content)

    async def get(self, url: str) -> httpx.Response:
        if self._gate is None:
            return await self._client.get(url)
        async with self._gate:
            return await self._client.get(url)


#: The naive client is what callers write: httpx's default pool, no bound.
NAIVE_CONNECTIONS = 100
#: The floor and the oracle get our Gateway's bound: 80 connections and requests in flight.
BOUNDED = 80


async def _per_task(
    n: int,
    url: str,
    http: str,
    job: Callable[[_Bounded, int, Recorder], Awaitable[None]],
    *,
    bounded: bool,
) -> Recorder:
    """One task per job, all at once (``asyncio.gather``), as callers usually write it."""
    recorder = Recorder()
    connections = BOUNDED if bounded else NAIVE_CONNECTIONS
    async with _httpx_client(url, http, connections) as client:
        sampler = asyncio.ensure_future(recorder.sample())
        bounded_client = _Bounded(client, BOUNDED if bounded else None)
        await asyncio.gather(*(job(bounded_client, i, recorder) for i in range(n)))
        sampler.cancel()
    return recorder


async def _submit(client: _Bounded, i: int, recorder: Recorder) -> httpx.Response:
    answer = await client.post(PAYMENT_PATH, _body(i))
    recorder.started()
    return answer


def naive(interval: float) -> Callable[[_Bounded, int, Recorder], Awaitable[None]]:
    async def job(client: _Bounded, i: int, recorder: Recorder) -> None:
        ack = (await _submit(client, i, recorder)).json()
        while True:
            await asyncio.sleep(interval)
            status = (await client.get(ack["status_url"])).json()
            if status.get("status") == "completed":
                break
        result = await client.get(ack["response_url"])
        result.json()
        recorder.finished(ack["request_id"])

    return job


def oracle(offsets: list[float]) -> Callable[[_Bounded, int, Recorder], Awaitable[None]]:
    async def job(client: _Bounded, i: int, recorder: Recorder) -> None:
        started = time.monotonic()
        ack = (await _submit(client, i, recorder)).json()
        k = 0
        while True:
            due = offsets[k] if k < len(offsets) else offsets[-1] + 30.0 * (k - len(offsets) + 1)
            k += 1
            await asyncio.sleep(max(0.0, started + due - time.monotonic()))
            answer = await client.get(ack["response_url"])
            if answer.json().get("status") != "processing":
                break
        recorder.finished(ack["request_id"])

    return job


async def _floor_job(client: _Bounded, i: int, recorder: Recorder) -> None:
    answer = await _submit(client, i, recorder)
    ack = answer.json()
    ready_at = float(answer.headers["x-simulator-ready-at"])
    await asyncio.sleep(max(0.0, ready_at - time.time()))
    while True:
        result = await client.get(ack["response_url"])
        if result.json().get("status") != "processing":
            break
        await asyncio.sleep(0.001)  # the two clocks' last microseconds
    recorder.finished(ack["request_id"])


async def ours(n: int, url: str, options: dict[str, Any]) -> Recorder:
    recorder = Recorder()
    poll = bga.PollPolicy(**options.get("poll", {}))
    limits = bga.Limits(**options.get("limits", {}))
    journal = None
    if options.get("journal"):
        journal = Path(tempfile.mkdtemp()) / "journal.db"
    key = None
    if options.get("webhooks"):
        async with httpx.AsyncClient() as client:
            key = (await client.get(f"{url}/_simulator/public_key")).json()["public_key"]
    gateway = bga.Gateway(
        url,
        SHOP,
        SECRET,
        poll=poll,
        limits=limits,
        http=options.get("http", "httpx"),
        journal=journal,
        webhook_key=key,
        webhook_poll=bga.PollPolicy(**options["webhook_poll"])
        if "webhook_poll" in options
        else None,
    )
    submitters = 64

    def done(job: bga.Job[Any]) -> None:
        recorder.finished(job.request_id)

    async def submitter(start: int) -> None:
        for i in range(start, n, submitters):
            try:
                job = await gw.submit(_payment(i, notify))
            except bga.GatewayError as exc:
                recorder.errors.append(type(exc).__name__)
                continue
            recorder.started()
            job.add_done_callback(done)

    # The shop opens first and closes last: the Gateway drains while it still takes notifications.
    endpoint = bga.WebhookEndpoint(gateway)
    shop = serve_here(endpoint) if key is not None else contextlib.nullcontext(None)
    async with shop as notify, gateway as gw:
        sampler = asyncio.ensure_future(recorder.sample())
        await asyncio.gather(*(submitter(k) for k in range(submitters)))
    sampler.cancel()
    return recorder


async def run(contender: str, n: int, url: str, options: dict[str, Any]) -> dict[str, Any]:
    """Run one contender; return its client-side measurements."""
    baseline = _rss_kib()
    cpu, wall = time.process_time(), time.perf_counter()
    http = options.get("http", "httpx")
    if contender == "ours":
        recorder = await ours(n, url, options)
    elif contender == "naive":
        recorder = await _per_task(n, url, http, naive(float(options["interval"])), bounded=False)
    elif contender == "oracle":
        sigma, median = float(options["sigma"]), float(options["median"])
        weight = float(options["weight"])
        offsets = [median * t for t in plan(lambda t: lognormal_cdf(t, 0.0, sigma), weight)]
        recorder = await _per_task(n, url, http, oracle(offsets), bounded=True)
    elif contender == "floor":
        recorder = await _per_task(n, url, http, _floor_job, bounded=True)
    else:
        raise ValueError(contender)
    return {
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.perf_counter() - wall,
        "baseline_rss_kib": baseline,
        "peak_rss_kib": max(recorder.peak_rss_kib, _rss_kib()),
        "peak_pending": recorder.peak_pending,
        "woke": recorder.woke,
        "errors": recorder.errors,
    }
