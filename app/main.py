"""create_app(): settings, database, middleware, error handlers and routers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from prometheus_client.core import GaugeMetricFamily, Metric
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.consent.inbound import router as sms_webhooks_router
from app.consent.routes import router as consent_router
from app.consent.staff_routes import router as subscriber_views_router
from app.consent.stop import carrier_stop
from app.console.routes import router as console_router
from app.console.web import page_refusal as console_refusal
from app.core.clock import Clock, SystemClock
from app.core.config import Settings
from app.core.context import Context
from app.core.counters import CounterBuffer
from app.core.crypto import Keys
from app.core.db import Database
from app.core.error_handlers import install_error_handlers
from app.core.health import router as health_router
from app.core.http import BodyLimitMiddleware
from app.core.metrics import Probe
from app.core.metrics import router as metrics_router
from app.core.observe import RequestObserver
from app.core.openapi import install_openapi
from app.coupons.routes import router as coupons_router
from app.delivery.messages import CampaignMessages
from app.delivery.routes import router as delivery_router
from app.ledger import checkpoints as ledger_checkpoints
from app.ledger import signing as ledger_signing
from app.ledger.provision_routes import router as ledger_provision_router
from app.ledger.routes import keys_router as ledger_keys_router
from app.ledger.routes import router as ledger_router
from app.models import TABLES
from app.my.deps import refusal as my_refusal
from app.my.erase import router as my_erase_router
from app.my.routes import router as my_router
from app.registry.routes import access_log_router
from app.registry.routes import router as registry_router
from app.sms import outbox
from app.sms.base import SmsSender
from app.sms.factory import build_sender
from app.sms.outbox import CAMPAIGN, CODE
from app.sms.worker import OutboxWorker
from app.staff.access_routes import router as staff_access_router
from app.staff.api_key_routes import router as api_keys_router
from app.staff.credential_routes import router as staff_credentials_router
from app.staff.routes import router as staff_router
from app.subject.routes import router as subject_router
from app.subject.staff_routes import router as subject_requests_router
from app.verification.messages import CodeMessages
from app.verification.pumping_routes import router as pumping_router
from app.verification.repository import SHARED_COUNT_PROGRESS, shared_counts_sql
from app.verification.routes import router as verification_router

log = logging.getLogger("smsreg")
DESCRIPTION = (
    "SMS verification and a purpose-bound phone-number registry. Errors are RFC 9457 "
    "problem details (`application/problem+json`) naming the field at fault."
)


def _seconds_since(clock: Clock, instant: dt.datetime | None) -> float:
    """How long ago ``instant`` was; 0 for none, or one still ahead."""
    return 0.0 if instant is None else max(0.0, (clock.now() - instant).total_seconds())


def metric_probes(db: Database, clock: Clock) -> list[Probe]:
    """What /metrics reads from the database at scrape time: the outbox and the pool."""

    async def outbox_gauges() -> list[Metric]:
        async with db.transaction() as tx:
            rows, oldest = await outbox.depth(tx)
        waiting = GaugeMetricFamily(
            "smsreg_outbox_messages", "Messages waiting or being sent", labels=["kind", "status"]
        )
        # Every kind and state, 0 when none waits: a series that vanished at 0 read as
        # "no data" to alerts and dashboards rather than as an empty queue.
        counts = {(row.kind, row.status): row.messages for row in rows}
        for kind in (CODE, CAMPAIGN):
            for status in ("pending", "sending"):
                waiting.add_metric([kind, status], counts.get((kind, status), 0))
        age = GaugeMetricFamily(
            "smsreg_outbox_oldest_due_seconds", "How long the oldest due message has waited"
        )
        # The oldest pending message's next try may lie ahead (a retry's backoff): then
        # nothing is due, and nothing has waited.
        age.add_metric([], _seconds_since(clock, oldest))
        # Retries push a message's due time ahead, so the age above stays 0 while a
        # carrier refuses for minutes: this one counts from when the message was queued,
        # by kind (a campaign's messages wait their turn for minutes; a code must not).
        unsent = GaugeMetricFamily(
            "smsreg_outbox_oldest_unsent_seconds",
            "How long since the oldest message not yet sent was queued",
            labels=["kind"],
        )
        for kind in (CODE, CAMPAIGN):
            queued = [row.queued for row in rows if row.kind == kind]
            unsent.add_metric([kind], _seconds_since(clock, min(queued, default=None)))
        return [waiting, age, unsent]

    async def pool_gauges() -> list[Metric]:
        status = db.pool_status()
        if not status:
            return []
        pool = GaugeMetricFamily(
            "smsreg_db_pool_connections", "PostgreSQL pool of this process", labels=["state"]
        )
        for state, value in status.items():
            pool.add_metric([state], value)
        return [pool]

    return [outbox_gauges, pool_gauges]


def outbox_worker(db: Database, ctx: Context, sender: SmsSender) -> OutboxWorker:
    """The outbox worker, with the renderer of each kind of message it sends."""
    return OutboxWorker(
        db,
        ctx,
        sender,
        renderers={CODE: CodeMessages(), CAMPAIGN: CampaignMessages()},
        on_opted_out=carrier_stop,
    )


def attach_runtime(
    app: FastAPI,
    settings: Settings,
    *,
    clock: Clock | None = None,
    sender: SmsSender | None = None,
) -> None:
    """Give ``app`` its runtime: the database, the context (settings, keys, clock) and the
    outbox worker, which its routes and its lifespan find in ``app.state``.

    create_app() calls it once. The test suite calls it again for each test on an app it
    built for the same settings: building an app's routes costs more than most tests.
    """
    settings = settings.with_dev_secrets()
    ledger_signing.ring(settings)  # no ledger signing key outside development: refuse to start
    db = Database.from_settings(settings)
    ctx = Context(
        settings=settings,
        keys=Keys(settings),
        clock=clock or SystemClock(),
        counters=CounterBuffer(db, shared_counts_sql, SHARED_COUNT_PROGRESS),
    )
    app.state.settings, app.state.ctx, app.state.db = settings, ctx, db
    app.state.tables = TABLES  # what readiness holds the role's grants to
    app.state.outbox = outbox_worker(db, ctx, sender or build_sender(settings))
    app.state.metric_probes = metric_probes(db, ctx.clock)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The process's background work: the outbox worker (unless a separate worker sends)
    and scheduled ledger checkpoints; on the way out, a clean stop."""
    settings: Settings = app.state.settings
    ctx: Context = app.state.ctx
    db: Database = app.state.db
    worker: OutboxWorker = app.state.outbox
    # What exists once the app is built lives as long as the process: keep the
    # cycle collector from walking it again. A full collection of those ~130k
    # objects took ~80 ms, stalling every request in flight.
    gc.collect()
    gc.freeze()
    sending = None
    if settings.outbox_dispatch == "background":
        sending = asyncio.create_task(worker.run_forever())
    scheduled = []
    if settings.ledger_checkpoint_interval_seconds > 0:
        scheduled.append(asyncio.create_task(ledger_checkpoints.run_schedule(db, ctx)))
    try:
        yield
    finally:
        # The worker finishes the sends in flight and gives back what it had claimed
        # but not started, within its stop timeout; everything else stops at once.
        worker.request_stop()
        if sending is not None:
            await asyncio.wait([sending], timeout=settings.outbox_stop_timeout_seconds)
            scheduled.append(sending)
        for task in scheduled:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if ctx.counters is not None:
            await ctx.counters.close()
        await db.dispose()


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    sender: SmsSender | None = None,
) -> FastAPI:
    """Build the application. Tests pass their own settings, clock and (fake carrier) sender."""
    settings = (settings or Settings()).with_dev_secrets()
    development = settings.environment == "development"
    app = FastAPI(
        title="smsreg",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # The interactive pages load their scripts from a CDN: development only. The
        # document itself (/openapi.json) is served everywhere, as openapi.yaml is.
        docs_url="/docs" if development else None,
        redoc_url="/redoc" if development else None,
        # No redirect by a path's trailing slash: Starlette's would take its Location's
        # host from the request's Host header (a redirect to wherever a client names).
        # /console and /my redirect by themselves, to a path.
        redirect_slashes=False,
    )
    attach_runtime(app, settings, clock=clock, sender=sender)
    if settings.trusted_proxies:
        # The client's address (and scheme) from X-Forwarded-For/-Proto, believed only from
        # these peers. Empty (the default): proxy headers are ignored.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    # Our own cap rather than FastAPI's max_body_size: Starlette's answers its refusal
    # as plain text, and every refusal here is a problem document.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        pages={"/my": my_refusal, "/console": console_refusal},
    )
    install_error_handlers(app)
    # Outermost: every answer, a refusal of the body-size cap included, is observed.
    app.add_middleware(RequestObserver)
    # In the order of the OpenAPI document's paths.
    for router in (
        verification_router,
        health_router,
        metrics_router,
        sms_webhooks_router,
        consent_router,
        delivery_router,
        coupons_router,
        staff_access_router,  # before staff_router: /v1/staff/grants is not a staff id
        staff_router,
        staff_credentials_router,
        api_keys_router,
        subscriber_views_router,
        registry_router,
        access_log_router,
        pumping_router,
        ledger_keys_router,
        ledger_router,
        ledger_provision_router,
        subject_router,
        subject_requests_router,
        my_erase_router,  # before my_router, whose catch-all would take its GETs
        my_router,
        console_router,
    ):
        app.include_router(router)
    install_openapi(app)
    return app
