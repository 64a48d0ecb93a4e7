"""/my/erase: the confirmation, the erasure, and its receipt."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse, Response

from app.core.deps import CtxDep, DbDep, TxDep
from app.my import pages
from app.my.deps import CSRF_CHECKED, CookieSubject, MyRoute, ended
from app.my.texts import RECEIPT, TEXTS
from app.subject import erasure, register

# Included by the app itself, before app.my.routes, whose catch-all would take its GETs,
# and with a prefix of its own: included into the /my router instead, its routes were
# logged and counted by the template "/erase" (the route FastAPI names in the scope then
# carries the included router's own path, not the parent's prefix).
router = APIRouter(prefix="/my", include_in_schema=False, route_class=MyRoute)


@router.get("/erase", response_class=HTMLResponse)
async def my_erase_confirm(request: Request, ctx: CtxDep, subject: CookieSubject) -> Response:
    if subject is None:
        return ended(request, ctx)
    return pages.page(request, ctx, "erase.html")


@router.post("/erase", response_class=HTMLResponse, dependencies=CSRF_CHECKED)
async def my_erase(
    request: Request,
    ctx: CtxDep,
    tx: TxDep,
    db: DbDep,
    subject: CookieSubject,
    background: BackgroundTasks,
    confirm: Annotated[str | None, Form(max_length=10)] = None,
) -> Response:
    if subject is None:
        return ended(request, ctx)
    if confirm != "yes":
        error = TEXTS[pages.language(request)]["erase_unchecked"]
        return pages.page(request, ctx, "erase.html", status=422, here="/my/erase",
                          error=error, invalid=["confirm"])  # fmt: skip
    receipt = await erasure.erase_own(tx, ctx, subject=subject)
    background.add_task(db.checkpoint)  # once committed: empty SQLite's write-ahead log
    # The receipt at an address of its own: a reload, or the language switch, shows it
    # again rather than posting the erasure again (which the ended session refuses).
    response = pages.redirect("/my/receipt")
    pages.set_receipt(ctx, request, response, receipt.id)
    pages.clear_session(request, response)
    return response


@router.get("/receipt", response_class=HTMLResponse)
async def my_receipt(request: Request, ctx: CtxDep, tx: TxDep) -> Response:
    """The receipt of the erasure this browser made, for 15 minutes after it (then, or
    without one: the start page)."""
    found = pages.receipt_id(ctx, request)
    receipt = None if found is None else await register.erasure_receipt(tx, found)
    if receipt is None or ctx.clock.now() - receipt.erased_at > RECEIPT_SHOWN:
        return pages.redirect("/my/")
    erased, kept = pages.receipt_lines(receipt, pages.language(request))
    words = RECEIPT[pages.language(request)]
    return pages.page(request, ctx, "receipt.html", receipt=receipt, words=words,
                      erased=erased, kept=kept)  # fmt: skip


# How long after the erasure its browser shows the receipt again: time to read it, switch
# its language and note its ID. The next user of a shared browser who starts to sign in
# forgets it sooner (pages.forget_receipt).
RECEIPT_SHOWN = dt.timedelta(minutes=15)
