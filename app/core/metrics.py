"""Prometheus metrics: counts of what happened, never a number, a code or a key.

With several server processes (``smsreg serve --workers N``) the counters live in files
that every process writes (prometheus-client's multiprocess mode: the CLI sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start), and a scrape of any process
answers the sum over all of them. What is read from the database at scrape time
(outbox depth, pool use) comes from probes the app registers.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.core.context import Context
from app.core.errors import AUTH_PROBLEMS, Unauthenticated
from app.core.http import JsonRoute, OneBearer

VERIFICATIONS_STARTED = Counter(
    "smsreg_verifications_started_total", "Verifications started (SMS queued)", ["purpose"]
)
VERIFICATIONS_APPROVED = Counter(
    "smsreg_verifications_approved_total", "Verifications approved by a right code", ["purpose"]
)
PUMPING_BLOCKS = Counter(
    "smsreg_pumping_prefix_blocks_total",
    "Number prefixes blocked by the pumping guard's conversion watch",
    ["region"],
)
LIMIT_REFUSALS = Counter(
    "smsreg_send_limit_refusals_total", "Sends refused by a send limit, by limit", ["limit"]
)
SMS_OUTCOMES = Counter(
    "smsreg_sms_outcomes_total",
    "What became of each carrier request: sent, retry, failed or unknown, by error class",
    ["carrier", "outcome", "error_class"],
)
HTTP_REQUESTS = Counter(
    "smsreg_http_requests_total", "HTTP requests by route template and status", ["route", "status"]
)
HTTP_LATENCY = Histogram(
    "smsreg_http_request_duration_seconds",
    "Time to answer, by route template",
    ["route"],
    buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

log = logging.getLogger("smsreg.metrics")
# How long a scrape waits for each probe's database read.
PROBE_SECONDS = 3.0

# A probe reads gauges at scrape time (outbox depth, pool use): metric families.
Probe = Callable[[], Awaitable[Iterable[Metric]]]


class _Probed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics


bearer = OneBearer(
    scheme_name="MetricsToken",
    description="SMSREG_METRICS_TOKEN, when one is set",
    auto_error=False,
)


async def _scraper(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    ctx: Context = request.app.state.ctx
    token = ctx.settings.metrics_token
    if token is None:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise Unauthenticated("send 'Authorization: Bearer <SMSREG_METRICS_TOKEN>'")


router = APIRouter(tags=["operations"], route_class=JsonRoute)


@router.get(
    "/metrics",
    summary="Prometheus metrics (counts only; no personal data)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, 401: AUTH_PROBLEMS[401]},
    dependencies=[Depends(_scraper)],
)
async def metrics(request: Request) -> Response:
    registry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    probes: list[Probe] = request.app.state.metric_probes
    found: list[Metric] = []
    answered = GaugeMetricFamily(
        "smsreg_metrics_probe_up",
        "Whether a probe read its gauges at this scrape (0: the database did not answer)",
        labels=["probe"],
    )
    for probe in probes:
        name = getattr(probe, "__name__", "probe")
        try:
            # Within a scraper's patience (Prometheus gives up after 10 s by default): a
            # database that does not answer must not cost the whole scrape.
            async with asyncio.timeout(PROBE_SECONDS):
                found += list(await probe())
        except Exception as exc:  # noqa: BLE001 -- the counters are scraped all the same
            # An outage is when the counters (5xx, pool use) matter most: a probe that
            # cannot read the database drops its own gauges, not the whole scrape.
            log.warning(
                "a metrics probe failed", extra={"probe": name, "error_type": type(exc).__name__}
            )
            answered.add_metric([name], 0)
        else:
            answered.add_metric([name], 1)
    if probes:
        found.append(answered)
    body = generate_latest(registry)
    if found:
        extra = CollectorRegistry()
        extra.register(_Probed(found))
        body += generate_latest(extra)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
