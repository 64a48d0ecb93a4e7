"""create_app(): settings, database, middleware, error handlers and routers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from app.consent.routes import router as consent_router
from app.core.clock import Clock, SystemClock
from app.core.config import Settings
from app.core.context import Context
from app.core.crypto import Keys
from app.core.db import Database, checkpoint, create_db_engine
from app.core.deps import Runtime
from app.core.errors import install_error_handlers
from app.core.health import router as health_router
from app.core.http import BodyLimitMiddleware
from app.core.metrics import router as metrics_router
from app.coupons.routes import router as coupons_router
from app.delivery.routes import router as delivery_router
from app.ledger import checkpoints as ledger_checkpoints
from app.ledger import signing as ledger_signing
from app.ledger.routes import router as ledger_router
from app.ledger.staff_routes import router as ledger_staff_router
from app.registry.routes import access_log_router
from app.registry.routes import router as registry_router
from app.sms.base import SmsSender
from app.sms.callbacks import router as sms_callback_router
from app.sms.factory import build_sender
from app.sms.inbound import router as sms_inbound_router
from app.sms.outbox import OutboxWorker
from app.staff.credential_routes import api_keys_router
from app.staff.credential_routes import router as staff_credentials_router
from app.staff.routes import router as staff_router
from app.verification.pumping_routes import router as pumping_router
from app.verification.routes import router as verification_router

log = logging.getLogger("smsreg")
DESCRIPTION = (
    "SMS verification and a purpose-bound phone-number registry. Errors are RFC 9457 "
    "problem details (`application/problem+json`) naming the field at fault."
)


async def _checkpoints(db: Database, *, every: float = 1.0) -> None:
    """Keep SQLite's WAL short from a thread, so no request waits for a disk sync."""
    while True:
        await asyncio.sleep(every)
        try:
            await db.checkpoint()
        except Exception:  # a busy or locked database only delays the next checkpoint
            log.warning("wal checkpoint skipped")


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    sender: SmsSender | None = None,
) -> FastAPI:
    """Build the application. Tests pass their own settings, clock and (fake carrier) sender."""
    settings = (settings or Settings()).with_dev_secrets()
    ctx = Context(settings=settings, keys=Keys(settings), clock=clock or SystemClock())
    ledger_signing.ring(settings)  # no ledger signing key outside development: refuse to start
    engine = create_db_engine(settings.database_url, background_checkpoint=True)
    db = Database(engine)
    worker = OutboxWorker(db, ctx, sender or build_sender(settings))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # What exists once the app is built lives as long as the process: keep the
        # cycle collector from walking it again. A full collection of those ~130k
        # objects took ~80 ms, stalling every request in flight (3 in 6,500 requests).
        gc.collect()
        gc.freeze()
        tasks = []
        if settings.outbox_dispatch == "background":
            tasks.append(asyncio.create_task(worker.run_forever()))
        if db.inline:
            tasks.append(asyncio.create_task(_checkpoints(db)))
        if settings.ledger_checkpoint_interval_seconds > 0:
            tasks.append(asyncio.create_task(ledger_checkpoints.run_schedule(db, ctx)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            db.close()
            if db.inline:
                checkpoint(engine)
            engine.dispose()

    app = FastAPI(
        title="smsreg",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.runtime = Runtime(ctx=ctx, db=db, outbox=worker)
    # Shortcuts for tests and tools.
    app.state.ctx, app.state.db, app.state.outbox = ctx, db, worker
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    # Routes are matched in order, one pattern at a time: the hot ones go first, and
    # as the app's own routes rather than an included router, whose routes FastAPI
    # walks on every request it matches, to see whether they changed (counted: ~2.5%
    # of the instructions of a start). The router declares its prefix and tags itself;
    # app.dependency_overrides do not reach these routes (nothing here uses them).
    app.router.routes.extend(verification_router.routes)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(sms_callback_router)
    app.include_router(sms_inbound_router)
    app.include_router(consent_router)
    app.include_router(delivery_router)
    app.include_router(coupons_router)
    app.include_router(staff_router)
    app.include_router(staff_credentials_router)
    app.include_router(api_keys_router)
    app.include_router(registry_router)
    app.include_router(access_log_router)
    app.include_router(pumping_router)
    app.include_router(ledger_router)
    app.include_router(ledger_staff_router)
    return app
