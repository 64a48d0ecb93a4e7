"""/console/ledger: the newest entries and checkpoints, the verification with the first
broken position, a checkpoint signed now, and the export as CSV or JSON Lines with the
API's filters (time, recipient, legal basis, subject), checked by the API's ExportQuery.

The auditors' services of the API (app.ledger.auditor, app.ledger.checkpoints), under
its role sets: those who may export read the entries (they hold subject ids, never a
number); auditors and privacy officers verify and sign checkpoints. Each page shows the
witness: whether one is configured, and the newest checkpoint it holds.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from app.console.auth import ConsoleForm, ConsoleRoles
from app.console.web import ConsoleRoute, query_form, staff_page
from app.core.context import Context
from app.core.deps import CtxDep, DbDep, TxDep
from app.ledger import auditor, checkpoints, witness
from app.ledger.audit_schemas import ExportQuery
from app.ledger.rules import LEGAL_BASES
from app.staff.auth import Staff
from app.staff.roles import LEDGER_AUDIT, LEDGER_EXPORT

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

ReaderPage = Annotated[Staff, Depends(ConsoleRoles(LEDGER_EXPORT))]
AuditorPage = Annotated[Staff, Depends(ConsoleRoles(LEDGER_AUDIT))]
AuditorForm = Annotated[Staff, Depends(ConsoleForm(LEDGER_AUDIT))]
NEWEST = 50


def _witness(ctx: Context) -> dict[str, Any]:
    """What the configured witness holds: how many checkpoints, and the newest."""
    path = ctx.settings.ledger_witness
    if path is None:
        return {"configured": False}
    try:
        records = witness.configured_records(ctx.settings)
    except (witness.UnreadableWitness, OSError) as exc:
        return {"configured": True, "path": str(path), "error": str(exc)}
    newest = records[-1] if records else None
    return {"configured": True, "path": str(path), "count": len(records), "newest": newest}


@router.get("/ledger")
async def ledger_page(
    request: Request,
    staff: ReaderPage,
    tx: TxDep,
    ctx: CtxDep,
    signed: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    recent = await auditor.recent(tx, ctx, limit=NEWEST)
    newest = recent.checkpoints[0] if recent.checkpoints else None
    context = {
        # Said after "Sign a checkpoint now" (which showed nothing), while that checkpoint
        # is the newest: an address alone cannot claim one that is not listed.
        "signed": newest if newest is not None and newest.id == signed else None,
        "recent": recent,
        "may_audit": staff.role in LEDGER_AUDIT,
        "report": None,
        "witness": _witness(ctx),
        "bases": LEGAL_BASES,
    }
    return staff_page(request, ctx, staff, "ledger.html", context)


@router.get("/ledger/verify")
async def verify(request: Request, staff: AuditorPage, tx: TxDep, ctx: CtxDep) -> Response:
    report = await auditor.verify_ledger(tx, ctx, actor=staff.actor)
    recent = await auditor.recent(tx, ctx, limit=NEWEST)
    context = {
        "recent": recent,
        "may_audit": True,
        "report": report,
        "witness": _witness(ctx),
        "bases": LEGAL_BASES,  # the export form's legal bases, as the API takes them
    }
    return staff_page(request, ctx, staff, "ledger.html", context)


@router.post("/ledger/checkpoints")
async def checkpoint(staff: AuditorForm, tx: TxDep, ctx: CtxDep) -> Response:
    made = await checkpoints.create_now(tx, ctx, actor=staff.actor)
    return RedirectResponse(f"/console/ledger?signed={made.id}", status_code=303)


@router.get("/ledger/export")
async def export(
    request: Request, staff: ReaderPage, tx: TxDep, ctx: CtxDep, db: DbDep
) -> StreamingResponse:
    query = query_form(request, ExportQuery)
    made = await auditor.export_ledger(tx, ctx, db=db, actor=staff.actor, query=query)
    media_type, disposition = auditor.export_file(ctx, query)
    headers = {"Content-Disposition": disposition, **made.headers}
    return StreamingResponse(made.chunks, media_type=media_type, headers=headers)
