"""The floor under a start and a check, for bench/run.py --floor: smsreg itself plus two
routes with the real routes' parameters and dependencies that do no work.

``POST /bench/floor/{verification_id}/check`` takes what the real check takes (the
verification id with its pattern, the code body, the API key with its scope, the unit of
work and the context) through smsreg's own middleware, and answers a constant
``CheckResultPublic``; ``POST /bench/floor/start`` takes what the real start takes (its
body, the API key, the unit, the context, the client address, the outbox, the response
and the ``Idempotency-Key`` header) and answers a constant ``VerificationPublic`` with
201. What they cost is the framework, the middleware and authentication (one API-key
read in a unit that writes nothing); what the real routes cost beyond them is their own
work. Only the benchmark serves this app.
"""

from __future__ import annotations

import datetime as dt

from fastapi import FastAPI, Response

from app.clients.auth import VerificationsWrite
from app.core.deps import ClientIp, CtxDep, OutboxDep, TxDep
from app.core.http import JsonRoute
from app.main import create_app as create_smsreg
from app.verification.routes import IdempotencyKey, VerificationId
from app.verification.schemas import (
    CheckResultPublic,
    VerificationCheck,
    VerificationPublic,
    VerificationStart,
)

FLOOR_CHECK = "/bench/floor/{verification_id}/check"
FLOOR_START = "/bench/floor/start"
_AT = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)


async def floor_check(
    verification_id: VerificationId,
    body: VerificationCheck,
    client: VerificationsWrite,
    tx: TxDep,
    ctx: CtxDep,
) -> CheckResultPublic:
    """The check route's signature, and none of its work."""
    return CheckResultPublic(
        id=verification_id, status="approved", purpose="coupon_usage", subscriber_id=None
    )


async def floor_start(
    body: VerificationStart,
    client: VerificationsWrite,
    tx: TxDep,
    ctx: CtxDep,
    ip: ClientIp,
    outbox: OutboxDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> VerificationPublic:
    """The start route's signature, and none of its work."""
    return VerificationPublic(
        id="ver_floor", status="pending", purpose=body.purpose, phone_masked="090-****-0000",
        expires_at=_AT, resend_after=_AT, attempts_left=5,
    )  # fmt: skip


def create_app() -> FastAPI:
    app = create_smsreg()
    # The API's route class, as the real routes have: their JSON read strictly.
    app.router.add_api_route(
        FLOOR_CHECK,
        floor_check,
        methods=["POST"],
        include_in_schema=False,
        route_class_override=JsonRoute,
    )
    app.router.add_api_route(
        FLOOR_START,
        floor_start,
        methods=["POST"],
        status_code=201,
        include_in_schema=False,
        route_class_override=JsonRoute,
    )
    # First in the route list (the real routes' router is the first smsreg includes): a
    # request is matched against the routes in turn, and at the end of smsreg's list
    # the matching alone cost a third of the floor.
    floors = app.router.routes[-2:]
    del app.router.routes[-2:]
    app.router.routes[:0] = floors
    return app
