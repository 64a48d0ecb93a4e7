"""A page route's refusal (the console's, /my/'s) ends the request's unit of work as the
refusal says, then answers a page: rolled back, or committed for a refusal that is
recorded. Rendering it inside the route would have committed a refused request."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi import APIRouter

from app.console.i18n import PROBLEM_TITLES
from app.console.web import ConsoleRoute
from app.core.deps import TxDep
from app.core.errors import AppError
from app.core.sql import Sql
from app.my.deps import MyRoute
from tests.staff.helpers import rows


@pytest.fixture
def app(fresh_app):
    """These tests add routes: an app of their own (tests/conftest.py)."""
    return fresh_app


_INSERT = Sql(
    "INSERT INTO audit_events (tag, actor, subject, at, details) "
    "VALUES (:tag, 'test', NULL, :at, '{}')"
)


class Refused(AppError):
    status = 409
    slug = "refused"
    title = "Refused"


class Recorded(Refused):
    commit = True


@pytest.mark.parametrize("route_class", [ConsoleRoute, MyRoute])
@pytest.mark.parametrize(("error", "kept"), [(Refused, 0), (Recorded, 1)])
async def test_a_refused_page_request_keeps_only_what_its_refusal_records(
    client, app, route_class, error, kept
):
    router = APIRouter(prefix="/test-pages", route_class=route_class)
    tag = f"test:{route_class.__name__}:{error.__name__}"

    @router.post("/write-then-refuse")
    async def write_then_refuse(tx: TxDep) -> None:
        await tx.run(_INSERT, {"tag": tag, "at": dt.datetime.now(dt.UTC)})
        raise error("no")

    app.include_router(router)
    answer = await client.post("/test-pages/write-then-refuse", headers={"Accept": "text/html"})
    assert answer.status_code == 409
    assert answer.headers["content-type"].startswith("text/html")
    assert len(rows(app, "SELECT id FROM audit_events WHERE tag = :tag", tag=tag)) == kept


async def _page_refusal(client, path: str, content: Any, status: int) -> str:
    """A form sent as a Japanese browser sends it, refused with ``status`` as a page
    (never a JSON problem): the page's text."""
    answer = await client.post(
        path,
        content=content,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "text/html",
            "Accept-Language": "ja",
        },
    )
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert "JSON" not in answer.text
    return answer.text


@pytest.mark.parametrize(
    ("path", "says"),
    [("/my/code", 'lang="ja"'), ("/console/login", PROBLEM_TITLES["ja"]["malformed-body"])],
)
async def test_a_form_too_large_to_read_is_refused_as_a_page(client, path, says):
    """More fields than Starlette reads (1,000): the page's own refusal, in its language,
    not the API's JSON problem about JSON."""
    form = "&".join(f"a{i}=1" for i in range(1100))
    assert says in await _page_refusal(client, path, form, 400)


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/my/code", "送信内容が長すぎます"),
        ("/console/login", PROBLEM_TITLES["ja"]["payload-too-large"]),
    ],
)
async def test_a_form_over_the_body_cap_is_refused_as_a_page(app, client, path, says, streamed):
    """Declared too large (refused before routing) or streamed past the cap: the page's
    own refusal, in its language, not a JSON problem."""
    body = b"phone=" + b"9" * (app.state.settings.max_body_bytes + 1)

    async def chunks():
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    assert says in await _page_refusal(client, path, chunks() if streamed else body, 413)


@pytest.mark.parametrize(
    ("method", "path"),
    [("HEAD", "/my/records"), ("DELETE", "/my/"), ("PUT", "/console/login")],
)
async def test_a_page_asked_with_another_method_is_refused_as_a_page(client, method, path):
    """Not the API's JSON problem, and with the pages' headers: no-store, no framing."""
    answer = await client.request(method, path, headers={"Accept": "text/html"})
    assert answer.status_code == 405, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["allow"]
