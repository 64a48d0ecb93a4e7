"""Helpers for the console tests: a browser's requests (Accept: text/html), the CSRF token
of a page's forms, and signing in through the console's own form."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.fixtures.staff import PASSWORD, create_staff

HTML = {"Accept": "text/html,application/xhtml+xml"}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_MADE = re.compile(r'name="made" value="(\d+)"')


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token in a page's forms."""
    found = _CSRF.search(page.text)
    assert found, f"no CSRF token in {page.url}: {page.text[:300]}"
    return found.group(1)


async def get(client: httpx.AsyncClient, path: str) -> httpx.Response:
    """A page, as a browser asks for it."""
    return await client.get(path, headers=HTML)


async def post(
    client: httpx.AsyncClient, path: str, data: dict[str, Any], *, csrf_from: str | None = None
) -> httpx.Response:
    """A form post, as a browser sends it, with the CSRF token of the page it came from
    (and the count of things made that a form making one carries, app.console.web)."""
    if csrf_from is not None:
        page = await get(client, csrf_from)
        made = _MADE.search(page.text)
        data = {**({"made": made.group(1)} if made else {}), **data, "csrf": csrf_of(page)}
    return await client.post(path, data=data, headers=HTML)


async def sign_in(
    client: httpx.AsyncClient,
    username: str,
    password: str = PASSWORD,
    **codes: str,
) -> httpx.Response:
    """The sign-in form, filled in and sent (the answer is not followed)."""
    return await post(
        client,
        "/console/login",
        {"username": username, "password": password, **codes},
        csrf_from="/console/login",
    )


def inline_scripts(html: str) -> list[str]:
    """Script elements without a src (inline code), and inline event handlers."""
    inline = [tag for tag in re.findall(r"<script\b[^>]*>", html) if "src=" not in tag]
    handlers = re.findall(r"\son[a-z]+\s*=", html)
    return inline + handlers


def browser(app: Any) -> httpx.AsyncClient:
    """Another browser (its own cookies) on the same app."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 40001))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def signed_in(app: Any, role: str, username: str) -> httpx.AsyncClient:
    """A browser signed in as a fresh account of this role (no second factor)."""
    await create_staff(app, role, username=username)
    http = browser(app)
    answer = await sign_in(http, username)
    assert answer.status_code == 303, answer.text
    return http
