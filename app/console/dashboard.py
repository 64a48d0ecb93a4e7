"""/console/: what is due for the signed-in person's role.

Each section is shown only to the roles that the matching API route admits (the role
sets of app.staff.roles), and is read through the same service:

- credentials near or past their end (admins: ``smsreg credentials due``);
- disclosure requests waiting for a decision (those who read requests);
- pumping blocks in force (those who read the fraud picture);
- role grants waiting for a second admin (admins and auditors);
- subject requests still open, the nearest due date first, those due within
  ``DUE_SOON`` (three days) marked (those who read the register).
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request, Response

from app.console.auth import AnyPage
from app.console.web import ConsoleRoute, staff_page
from app.core.deps import CtxDep, TxDep
from app.ledger import workflow
from app.staff import credentials_due, grants, roles
from app.subject import register
from app.verification import pumping

DUE_SOON = dt.timedelta(days=3)
router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


@router.get("/")
async def dashboard(request: Request, staff: AnyPage, tx: TxDep, ctx: CtxDep) -> Response:
    role = staff.role
    sections: dict[str, object] = {}
    if role in roles.STAFF_ADMIN:
        sections["due"] = await credentials_due.due(tx, ctx)
    if role in roles.DISCLOSURE_READ:
        sections["disclosures"] = await workflow.list_requests(tx, ctx, status="requested")
    if role in roles.PUMPING_READ:
        sections["blocks"] = await pumping.list_blocks(tx, ctx)
    if role in roles.STAFF_READ:
        sections["grants"] = await grants.list_grants(tx, ctx, status="pending")
    if role in roles.SUBJECT_REQUESTS_READ:
        sections["subject_requests"] = await register.listing(
            tx, ctx, status="open", subject_id=None
        )
    soon = ctx.clock.now() + DUE_SOON
    return staff_page(
        request, ctx, staff, "dashboard.html", {"sections": sections, "due_soon": soon}
    )
