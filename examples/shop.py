"""A Starlette shop that takes card payments, sends customers to 3-D Secure, and learns by webhook.

    POST /orders            {"amount": 1999, "currency": "USD", "card": {...}}
                            → 201 {"order": id, "state": "successful" | "failed"}
                            → 303 to the gateway's 3-D Secure page (the order is "incomplete")
    GET  /orders/{id}       → {"order": id, "state": ...}
    POST /begateway/notify  the gateway's notifications (`WebhookEndpoint`)

Run it against the bundled simulator (``begateway-async simulate --port 8080``) or a real gateway::

    export BEGATEWAY_URL=https://gateway.pay-cross.com BEGATEWAY_SHOP_ID=...
    export BEGATEWAY_SECRET_KEY=... BEGATEWAY_PUBLIC_KEY=... SHOP_URL=https://shop.example
    uvicorn --factory examples.shop:from_environment
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

import begateway_async as bga

# --- README: begin ---
FINAL = {"successful", "failed", "expired", "error"}


def create_app(gateway: bga.Gateway, shop_url: str) -> Starlette:
    """The shop's app; ``shop_url`` is where the gateway and the customer reach it."""
    orders: dict[str, str] = {}  # order id -> state: your database in a real shop

    def settle(order_id: str, state: str) -> None:
        if orders.get(order_id) not in FINAL:  # a final state is never overwritten
            orders[order_id] = state

    async def notified(notification: bga.Notification) -> None:
        # Called for every verified notification before the gateway gets its 200;
        # the gateway may send one again, so this must be idempotent.
        tx = notification.transaction
        if tx.tracking_id in orders:
            settle(tx.tracking_id, tx.status)

    async def create_order(request: Request) -> Response:
        order_id = str(uuid.uuid4())
        try:
            data = await request.json()
            payment = bga.Payment(
                amount=data["amount"],  # an integer of minor units; 19.99 is refused here
                currency=data["currency"],
                description=f"Order {order_id}",
                tracking_id=order_id,  # one per payment: notifications find their job by it
                credit_card=bga.CreditCard(**data["card"]),
                notification_url=f"{shop_url}/begateway/notify",
                return_url=f"{shop_url}/orders/{order_id}",  # back from 3-D Secure
            )
        except (ValueError, KeyError, TypeError) as exc:  # InvalidRequest names the field
            return JSONResponse({"error": f"not an order: {exc}"}, status_code=400)
        orders[order_id] = "pending"
        try:
            tx = await gateway.payment(payment, timeout=60)
        except bga.Rejected as exc:  # an expired card and the like: nothing was charged
            orders[order_id] = "rejected"
            return JSONResponse({"order": order_id, "errors": exc.errors}, status_code=422)
        except bga.JobFailed as exc:  # processing failed at the gateway or the bank
            orders[order_id] = "error"
            return JSONResponse({"order": order_id, "error": exc.message}, status_code=502)
        except bga.JobTimeout:  # the bank is slow; the notification will tell
            return JSONResponse({"order": order_id, "state": "pending"}, status_code=202)
        settle(order_id, tx.status)
        if tx.incomplete:  # 3-D Secure: the customer goes there; the webhook says how it ended
            return RedirectResponse(tx.redirect_url or "/", status_code=303)
        return JSONResponse({"order": order_id, "state": tx.status}, status_code=201)

    async def show_order(request: Request) -> Response:
        order_id = request.path_params["order_id"]
        if order_id not in orders:
            return JSONResponse({"error": "no such order"}, status_code=404)
        return JSONResponse({"order": order_id, "state": orders[order_id]})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with gateway:  # one Gateway, open for the life of the app
            yield

    return Starlette(
        routes=[
            Route("/orders", create_order, methods=["POST"]),
            Route("/orders/{order_id}", show_order),
            Route(
                "/begateway/notify",
                bga.WebhookEndpoint(gateway, on_notification=notified),
                methods=["POST"],
            ),
        ],
        lifespan=lifespan,
    )


# --- README: end ---


def from_environment() -> Starlette:
    """The app configured by ``BEGATEWAY_*`` and ``SHOP_URL`` environment variables."""
    gateway = bga.Gateway(
        os.environ["BEGATEWAY_URL"],
        os.environ["BEGATEWAY_SHOP_ID"],
        os.environ["BEGATEWAY_SECRET_KEY"],
        webhook_key=os.environ.get("BEGATEWAY_PUBLIC_KEY") or None,
        journal=os.environ.get("BEGATEWAY_JOURNAL") or None,
    )
    return create_app(gateway, os.environ["SHOP_URL"].rstrip("/"))
