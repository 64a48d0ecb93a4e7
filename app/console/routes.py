"""The console's routers, in one, and its static files (a stylesheet and a script)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse, RedirectResponse

from app.console import (
    account,
    dashboard,
    disclosures,
    keys,
    ledger,
    provision,
    sign_in,
    staff,
    subject_requests,
    subscribers,
)
from app.console.web import HERE, ConsoleRoute
from app.core.errors import NotFound

STATIC = {"console.css": "text/css", "reveal.js": "text/javascript"}

# Not a ConsoleRoute: these files may be cached (they hold nothing personal).
static_router = APIRouter(prefix="/console", include_in_schema=False)


@static_router.get("")
async def console_root() -> RedirectResponse:
    """``/console`` to ``/console/``. The app redirects no other path by its trailing
    slash: Starlette builds that Location from the Host header a client sends."""
    return RedirectResponse("/console/", status_code=307)


@static_router.get("/static/{name}")
async def static_file(name: Annotated[str, Path(max_length=40)]) -> FileResponse:
    # Only the files named here: no path from the request ever reaches the filesystem.
    if name not in STATIC:
        raise NotFound(f"no static file {name}")
    return FileResponse(
        HERE / "static" / name,
        media_type=STATIC[name],
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


# Last: any other /console/ address is a page too (404, with the console's headers).
fallback_router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


@fallback_router.get("/{rest}")
async def not_found(rest: str) -> None:
    raise NotFound("no such console page")


router = APIRouter()
for part in (
    sign_in.router,
    account.router,
    dashboard.router,
    subscribers.router,
    provision.router,
    subject_requests.router,
    disclosures.router,
    ledger.router,
    staff.router,
    keys.router,
    static_router,
    fallback_router,
):
    router.include_router(part)
