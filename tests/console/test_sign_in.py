"""Signing in to the console: the session cookie, CSRF on every form, the API's login
throttles, first TOTP enrolment with a QR code, password expiry, sign-out, and the
security headers of every page."""

from __future__ import annotations

import re
from typing import Any

import pyotp
import pytest

from app.console import i18n
from app.console.auth import SESSION_COOKIE, secure_cookies
from app.core.clock import SystemClock
from app.core.context import Context
from app.core.crypto import Keys
from tests.conftest import count_rows, make_settings
from tests.console.helpers import HTML, csrf_of, get, inline_scripts, post, sign_in
from tests.fixtures.staff import PASSWORD
from tests.staff.helpers import CHEAP_HASHING, create_staff, events, rows

NEW_PASSWORD = "a brand new long passphrase"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {**CHEAP_HASHING}


def cookie_header(answer) -> str:
    found = [v for k, v in answer.headers.multi_items() if k == "set-cookie"]
    session = [v for v in found if v.startswith(SESSION_COOKIE + "=")]
    assert session, found
    return session[0]


async def test_sign_in_sets_an_httponly_strict_cookie_and_shows_the_dashboard(client, app):
    await create_staff(app, "operator", username="taro", display_name="Taro Sato")
    answer = await sign_in(client, "taro")
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/"
    cookie = cookie_header(answer).lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    assert "secure" not in cookie  # development serves plain http on loopback
    token = client.cookies[SESSION_COOKIE]
    assert token not in answer.text
    page = await get(client, "/console/")
    assert page.status_code == 200
    assert "Taro Sato" in page.text
    # The console's session is an API session like any other: one row, one success event.
    assert count_rows(app, "staff_sessions") == 1
    assert len(events(app, "staff:login:succeeded")) == 1


def test_the_session_cookie_is_secure_outside_development(tmp_path):
    settings = make_settings("sqlite://", tmp_path).model_copy(update={"environment": "production"})
    assert secure_cookies(Context(settings=settings, keys=Keys(settings), clock=SystemClock()))


async def test_a_form_without_its_csrf_token_changes_nothing(client, app):
    await create_staff(app, "operator", username="taro")
    refused = await client.post(
        "/console/login", data={"username": "taro", "password": "x" * 20}, headers=HTML
    )
    assert refused.status_code == 400 and SESSION_COOKIE not in client.cookies
    assert count_rows(app, "staff_login_attempts") == 0
    assert (await sign_in(client, "taro")).status_code == 303
    # Signed in: a form bound to another session's token (or none) is refused too.
    for token in (None, "0" * 64, "é" * 64, "0" * 500):
        data = {} if token is None else {"csrf": token}
        answer = await client.post("/console/logout", data=data, headers=HTML)
        assert answer.status_code == 400, answer.text
    assert (await get(client, "/console/")).status_code == 200  # still signed in


@pytest.mark.parametrize(
    "from_elsewhere",
    [
        {"Sec-Fetch-Site": "same-site"},  # another port of the host, a sibling host
        {"Origin": "http://testserver:8149"},
        {"Origin": "null"},
    ],
)
async def test_a_form_posted_from_a_page_not_our_own_is_refused(client, app, from_elsewhere):
    """The sign-in form's token is bound to a cookie a page of the same site can plant
    with its own token: it signed the browser in to that page's account (login CSRF).
    The browser says where a form comes from, checked as on /my/ (one function)."""
    await create_staff(app, "operator", username="taro")
    page = await get(client, "/console/login")
    form = {"username": "taro", "password": PASSWORD, "csrf": csrf_of(page)}
    refused = await client.post("/console/login", data=form, headers={**HTML, **from_elsewhere})
    assert refused.status_code == 400 and SESSION_COOKIE not in client.cookies
    assert count_rows(app, "staff_login_attempts") == 0
    own = {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"}
    assert (
        await client.post("/console/login", data=form, headers={**HTML, **own})
    ).status_code == 303
    # Signed in, a signed-in form from elsewhere is refused too.
    home = await get(client, "/console/")
    out = await client.post(
        "/console/logout", data={"csrf": csrf_of(home)}, headers={**HTML, **from_elsewhere}
    )
    assert out.status_code == 400
    assert (await get(client, "/console/")).status_code == 200  # still signed in
    assert (await get(client, "/console/login")).headers["referrer-policy"] == "same-origin"


async def test_a_form_post_from_a_non_browser_gets_a_problem_naming_the_field(client, app):
    page = await get(client, "/console/login")
    answer = await client.post("/console/login", data={"csrf": csrf_of(page), "username": "x"})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == ["password"]
    html = await client.post(
        "/console/login", data={"csrf": csrf_of(page), "username": "x"}, headers=HTML
    )
    assert html.status_code == 422 and "password" in html.text
    assert html.headers["content-type"].startswith("text/html")


async def test_every_page_has_the_policy_and_no_inline_script(client, app):
    await create_staff(app, "admin", username="root")
    pages = ["/console/login", "/console/enrol"]
    for path in pages:
        await check_headers(await get(client, path))
    await sign_in(client, "root")
    for path in ["/console/", "/console/account", "/console/account/password"]:
        await check_headers(await get(client, path))
    await check_headers(await get(client, "/console/no-such-page"), status=404)


async def check_headers(page, status=200):
    assert page.status_code == status, page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store"
    assert inline_scripts(page.text) == []


async def test_wrong_passwords_are_throttled_as_on_the_api(client, app):
    await create_staff(app, "operator", username="taro")
    for _ in range(5):
        wrong = await sign_in(client, "taro", "wrong password!!")
        # The sign-in form again, saying what went wrong: not an error page.
        assert wrong.status_code == 401 and 'action="/console/login"' in wrong.text
        assert "Wrong username, password or authenticator code." in wrong.text
    throttled = await sign_in(client, "taro")
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0
    # The API counts the same attempts: it is one throttle.
    api = await client.post("/v1/staff/sessions", json={"username": "taro", "password": "x"})
    assert api.status_code == 429


async def test_sign_out_ends_the_session_at_once(client, app):
    await create_staff(app, "operator", username="taro")
    await sign_in(client, "taro")
    token = client.cookies[SESSION_COOKIE]
    out = await post(client, "/console/logout", {}, csrf_from="/console/")
    assert out.status_code == 200
    assert SESSION_COOKIE not in client.cookies
    client.cookies.set(SESSION_COOKIE, token, path="/console")
    again = await get(client, "/console/")
    # The sign-in page says the session ended (it said only "Sign in"), and the dead
    # cookie is forgotten, so the next visit is an ordinary one.
    assert again.status_code == 303 and again.headers["location"] == "/console/login?ended=1"
    forgotten = again.headers["set-cookie"]
    assert forgotten.startswith(f'{SESSION_COOKIE}=""') and "Max-Age=0" in forgotten
    told = await get(client, again.headers["location"])
    assert i18n.CATALOGUE["en"]["session_ended"] in told.text
    client.cookies.delete(SESSION_COOKIE)  # as the browser did on the redirect
    assert (await get(client, "/console/")).headers["location"] == "/console/login"


async def test_an_expired_password_leads_to_its_change_and_nowhere_else(client, app, clock):
    await create_staff(app, "operator", username="taro")
    clock.advance(days=91)
    answer = await sign_in(client, "taro")
    assert answer.headers["location"] == "/console/account/password"
    assert (await get(client, "/console/")).status_code == 403
    # Typed twice unalike (the field hides what is typed): refused, nothing changed.
    mistyped = await post(
        client,
        "/console/account/password",
        {
            "current_password": "correct horse battery",
            "new_password": NEW_PASSWORD,
            "repeat_password": NEW_PASSWORD + "x",
        },
        csrf_from="/console/account/password",
    )
    assert mistyped.status_code == 422 and "repeat_password" in mistyped.text
    assert (await get(client, "/console/")).status_code == 403
    changed = await post(
        client,
        "/console/account/password",
        {
            "current_password": "correct horse battery",
            "new_password": NEW_PASSWORD,
            "repeat_password": NEW_PASSWORD,
        },
        csrf_from="/console/account/password",
    )
    assert changed.status_code == 303, changed.text
    assert (await get(client, "/console/")).status_code == 200
    wrong = await post(
        client,
        "/console/account/password",
        {
            "current_password": "not it at all",
            "new_password": NEW_PASSWORD + "!",
            "repeat_password": NEW_PASSWORD + "!",
        },
        csrf_from="/console/account/password",
    )
    assert wrong.status_code == 422 and "current_password" in wrong.text


async def test_a_password_change_sent_again_is_neither_checked_nor_counted(client, app, clock):
    """The same change sent from a second tab (or again after Back): its current password
    is the old one by then, and it counted a failure towards the lockout and recorded a
    failed login, saying only that the current password was wrong."""
    await create_staff(app, "operator", username="taro")
    assert (await sign_in(client, "taro")).status_code == 303
    page = await get(client, "/console/account/password")
    changed = re.search(r'name="changed" value="([^"]+)"', page.text).group(1)
    form = {
        "current_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "repeat_password": NEW_PASSWORD,
        "csrf": csrf_of(page),
        "changed": changed,
    }
    clock.advance(seconds=5)
    assert (await post(client, "/console/account/password", form)).status_code == 303
    again = await post(client, "/console/account/password", form)
    assert again.status_code == 409, again.text
    assert "after this form was shown" in again.text and "neither checked nor counted" in again.text
    assert rows(app, "SELECT failed_logins FROM staff_accounts") == [{"failed_logins": 0}]
    failed = "SELECT count(*) AS n FROM audit_events WHERE tag = 'staff:login:failed'"
    assert rows(app, failed) == [{"n": 0}]


@pytest.mark.parametrize(
    "settings_overrides", [{**CHEAP_HASHING, "totp_required_roles": ["privacy_officer"]}]
)
async def test_first_sign_in_enrols_totp_with_a_qr_code_and_shows_recovery_codes_once(
    client, app, clock
):
    await create_staff(app, "privacy_officer", username="hanako")
    answer = await sign_in(client, "hanako")
    assert answer.headers["location"] == "/console/account/totp"
    assert (await get(client, "/console/")).status_code == 403
    started = await post(client, "/console/account/totp", {}, csrf_from="/console/account/totp")
    assert started.status_code == 200
    assert 'src="data:image/svg+xml' in started.text
    secret = started.text.split('id="totp-secret">')[1].split("<")[0]
    code = pyotp.TOTP(secret).at(clock.now())
    typo = "000000" if code != "000000" else "111111"
    wrong = await post(
        client, "/console/account/totp/confirm", {"code": typo, "csrf": csrf_of(started)}
    )
    assert wrong.status_code == 422 and f'id="totp-secret">{secret}<' in wrong.text
    done = await post(
        client, "/console/account/totp/confirm", {"code": code, "csrf": csrf_of(wrong)}
    )
    assert done.status_code == 200, done.text
    assert done.text.count("<li><code>") == 10
    assert (await get(client, "/console/")).status_code == 200
    # Next time: the password alone is not enough; with the code it is.
    await post(client, "/console/logout", {}, csrf_from="/console/")
    clock.advance(seconds=30)
    assert (await sign_in(client, "hanako")).status_code == 401
    fresh = pyotp.TOTP(secret).at(clock.now())
    assert (await sign_in(client, "hanako", totp=fresh)).status_code == 303
    # New recovery codes from the account page (only the API made them): a current code
    # proves the second factor, and the old codes stop working.
    old_codes = re.findall(r"<li><code>([^<]+)</code>", done.text)
    account = await get(client, "/console/account")
    assert 'id="new-recovery-codes"' in account.text
    wrong = await post(
        client, "/console/account/recovery-codes", {"code": typo, "csrf": csrf_of(account)}
    )
    assert wrong.status_code == 422
    clock.advance(seconds=30)
    renewed = await post(
        client,
        "/console/account/recovery-codes",
        {"code": pyotp.TOTP(secret).at(clock.now()), "csrf": csrf_of(account)},
    )
    assert renewed.status_code == 200, renewed.text
    new_codes = re.findall(r"<li><code>([^<]+)</code>", renewed.text)
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    # Reloaded, the same code is a replay, and the refusal says the codes just shown are
    # the valid ones (it said only that the code was wrong).
    reloaded = await post(
        client,
        "/console/account/recovery-codes",
        {"code": pyotp.TOTP(secret).at(clock.now()), "csrf": csrf_of(account)},
    )
    assert reloaded.status_code == 422 and 'id="hint"' in reloaded.text
    assert "the recovery codes it showed are the valid ones" in reloaded.text
    await post(client, "/console/logout", {}, csrf_from="/console/")
    assert (await sign_in(client, "hanako", recovery_code=old_codes[0])).status_code == 401
    assert (await sign_in(client, "hanako", recovery_code=new_codes[0])).status_code == 303


async def test_japanese_by_accept_language_or_the_switch(client, app):
    page = await client.get("/console/login", headers={**HTML, "Accept-Language": "ja,en;q=0.5"})
    assert "サインイン" in page.text and '<html lang="ja">' in page.text
    # The switch goes back to the page it was on: the sign-in page, not a 401.
    assert 'href="/console/language/en?back=/console/login"' in page.text
    switched = await client.get("/console/language/en?back=/console/login")
    assert switched.status_code == 303 and switched.headers["location"] == "/console/login"
    cookie = switched.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    page = await client.get("/console/login", headers={**HTML, "Accept-Language": "ja"})
    assert "Sign in" in page.text
    # Never another site, nor a path outside the console.
    for elsewhere in (
        "//evil.example/",
        "https://evil.example/",
        "/my/",
        "/console\\evil",
        "/console/../my/",
        "/console/..%2fmy/",
    ):
        away = await client.get("/console/language/ja", params={"back": elsewhere})
        assert away.headers["location"] == "/console/"
    # A page with its filters comes back with them.
    kept = "/console/access-log?since=2026-12-01T05:00&reason=a+b"
    back = await client.get("/console/language/ja", params={"back": kept})
    assert back.headers["location"] == kept
