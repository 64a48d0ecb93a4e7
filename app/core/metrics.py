"""Prometheus metrics: counts of what happened, never a number, code or key.

Counters live in the process (one registry per worker process); scrape each replica.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

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

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (counts only; no personal data)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
