"""The floor under a check, for bench/run.py --floor: smsreg itself plus one route with
the check route's parameters and dependencies that does no work.

``POST /bench/floor/{verification_id}/check`` takes what the real check takes (the
verification id with its pattern, the code body, the API key with its scope, the unit of
work and the context) through smsreg's own middleware, and answers a constant
``CheckResultPublic``. What it costs is the framework, the middleware and authentication
(one API-key read in a unit that writes nothing); what the real check costs beyond it is
the check's own work. Only the benchmark serves this app.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.clients.auth import VerificationsWrite
from app.core.deps import CtxDep, TxDep
from app.main import create_app as create_smsreg
from app.verification.routes import VerificationId
from app.verification.schemas import CheckResultPublic, VerificationCheck

FLOOR_PATH = "/bench/floor/{verification_id}/check"


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


def create_app() -> FastAPI:
    app = create_smsreg()
    app.add_api_route(FLOOR_PATH, floor_check, methods=["POST"], include_in_schema=False)
    # First in the route list (the real check's router is the first smsreg includes): a
    # request is matched against the routes in turn, and at the end of smsreg's list
    # the matching alone cost a third of the floor.
    app.router.routes.insert(0, app.router.routes.pop())
    return app
