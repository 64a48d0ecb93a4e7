"""create_app(): settings, database, middleware, error handlers and routers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.clients.routes import router as api_keys_router
from app.consent.inbound import router as sms_inbound_router
from app.consent.routes import router as consent_router
from app.consent.staff_routes import router as subscriber_views_router
from app.core.clock import Clock, SystemClock
from app.core.config import Settings
from app.core.context import Context
from app.core.crypto import Keys
from app.core.db import Database
from app.core.errors import install_error_handlers
from app.core.health import router as health_router
from app.core.http import BodyLimitMiddleware
from app.core.metrics import router as metrics_router
from app.coupons.routes import router as coupons_router
from app.delivery.messages import CampaignMessages
from app.delivery.routes import router as delivery_router
from app.registry.routes import access_log_router
from app.registry.routes import router as registry_router
from app.sms.base import SmsSender
from app.sms.callbacks import router as sms_callback_router
from app.sms.factory import build_sender
from app.sms.outbox import CAMPAIGN, CODE, OutboxWorker
from app.verification.messages import CodeMessages
from app.verification.pumping_routes import router as pumping_router
from app.verification.routes import router as verification_router

log = logging.getLogger("smsreg")
DESCRIPTION = (
    "SMS verification and a purpose-bound phone-number registry. Errors are RFC 9457 "
    "problem details (`application/problem+json`) naming the field at fault."
)


def outbox_worker(db: Database, ctx: Context, sender: SmsSender) -> OutboxWorker:
    """The outbox worker, with the renderer of each kind of message it sends."""
    return OutboxWorker(
        db, ctx, sender, renderers={CODE: CodeMessages(), CAMPAIGN: CampaignMessages()}
    )


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    sender: SmsSender | None = None,
) -> FastAPI:
    """Build the application. Tests pass their own settings, clock and (fake carrier) sender."""
    settings = (settings or Settings()).with_dev_secrets()
    ctx = Context(settings=settings, keys=Keys(settings), clock=clock or SystemClock())
    db = Database.from_settings(settings)
    worker = outbox_worker(db, ctx, sender or build_sender(settings))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # What exists once the app is built lives as long as the process: keep the
        # cycle collector from walking it again. A full collection of those ~130k
        # objects took ~80 ms, stalling every request in flight.
        gc.collect()
        gc.freeze()
        tasks = []
        if settings.outbox_dispatch == "background":
            tasks.append(asyncio.create_task(worker.run_forever()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await db.dispose()

    app = FastAPI(
        title="smsreg",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings, app.state.ctx, app.state.db, app.state.outbox = settings, ctx, db, worker
    if settings.trusted_proxies:
        # The client's address (and scheme) from X-Forwarded-For/-Proto, believed only from
        # these peers. Empty (the default): proxy headers are ignored.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    # Our own cap rather than FastAPI's max_body_size: Starlette's answers its refusal
    # as plain text, and every refusal here is a problem document.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    for router in (
        verification_router,
        health_router,
        metrics_router,
        sms_callback_router,
        sms_inbound_router,
        consent_router,
        delivery_router,
        coupons_router,
        api_keys_router,
        subscriber_views_router,
        registry_router,
        access_log_router,
        pumping_router,
    ):
        app.include_router(router)
    return app
