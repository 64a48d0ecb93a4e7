"""A privacy officer handles subject requests in headless Chromium, against a real server.

She enrols her authenticator on her first sign-in, finds the subscriber, records a stop of
third-party provision the person asked for by phone and closes it as done (carried out
at once), resumes provision from the subscriber's page, then records an erasure asked for
by letter and carries it out: the browser holds the form back until the "I am sure" box
is ticked, and the answer shows the receipt. `make screenshots` saves the pages to
docs/console/*.png for docs/console.md.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from app.core.db import create_sync_engine
from app.models.staff import StaffAccount
from app.models.types import table
from tests.console.test_browser import SHOTS, verified_subscriber
from tests.fixtures.live import LiveServer

pytestmark = pytest.mark.browser

PASSWORD = "the officer's long passphrase"
NUMBER = "090-1234-5678"


def shot(page: Any, name: str) -> None:
    """Save the page as NAME.png in SHOTS (docs/console/ for `make screenshots`)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def add_officer(live: LiveServer, username: str) -> None:
    """A privacy officer's account, written straight into the server's database as the
    suite's staff fixture does (the invitation and four-eyes flow is test_browser's)."""
    now = dt.datetime.now(dt.UTC)
    account = StaffAccount(
        id="stf_" + secrets.token_urlsafe(12),
        username=username,
        display_name="Hanako Yamada",
        role="privacy_officer",
        # argon2id at its cheapest: the hash records its own parameters.
        password_hash=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD),
        password_changed_at=now,
        failed_logins=0,
        created_by="test",
        created_at=now,
    )
    engine = create_sync_engine(live.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(table(StaffAccount)).values(account.model_dump()))
    finally:
        engine.dispose()


def sign_in_and_enrol(page: Any, live: LiveServer, username: str) -> None:
    """The first sign-in of a privacy officer: the password, then TOTP enrolment."""
    page.goto(live.url + "/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main form button[type=submit]")
    assert page.url.endswith("/console/account/totp")
    page.click("text=Enrol an authenticator app")
    secret = page.inner_text("#totp-secret")
    page.fill("input[name=code]", pyotp.TOTP(secret).at(time.time()))
    page.click("main form.card button[type=submit]")
    assert page.locator("#recovery-codes li").count() == 10
    page.click("text=Continue")
    assert page.url.endswith("/console/")


def record(page: Any, *, kind: str, channel: str, reason: str) -> str:
    """Fill the request form (opened already) and send it; the new request's id."""
    page.select_option("#record-form select[name=kind]", kind)
    page.select_option("#record-form select[name=channel]", channel)
    page.fill("#record-form textarea[name=reason]", reason)
    page.click("#record-form button[type=submit]")
    assert "/console/subject-requests/sjr_" in page.url
    return str(page.url.rsplit("/", 1)[1])


def test_an_officer_records_and_closes_subject_requests(
    live_server: LiveServer, chromium: Any
) -> None:
    live = live_server
    sid = verified_subscriber(live, live.api_key)
    add_officer(live, "hanako")
    page = chromium.new_context(locale="en-US").new_page()
    page.set_default_timeout(15_000)
    try:
        sign_in_and_enrol(page, live, "hanako")

        # -- a stop of provision asked for by phone, recorded from the subscriber's page --
        page.click("nav >> text=Subscribers")
        page.fill("input[name=phone]", NUMBER)
        page.click("main form.card button[type=submit]")
        page.click(f"text={sid}")
        page.click("#requests-of-subscriber >> text=Record a request")
        assert page.input_value("#record-form input[name=subject_id]") == sid
        stop = record(
            page, kind="stop_provision", channel="phone",
            reason="Caller asked to stop provision; identity checked by a call back",
        )  # fmt: skip
        assert page.inner_text("#status") == "Open"
        shot(page, "subject-request")
        page.fill("#close textarea[name=note]", "Stopped as asked on the call back")
        page.click("#close button[value=done]")
        assert page.inner_text("#status") == "Done"
        page.goto(live.url + f"/console/subscribers/{sid}")
        assert "stopped by the subject since" in page.inner_text("#provision-state")
        # The person changes their mind by letter: resumed on the subscriber's page.
        page.select_option("#provision-change select[name=source]", "letter")
        page.click("#provision-change button[type=submit]")
        assert page.inner_text("#provision-state") == "not stopped"

        # -- an erasure asked for by letter, carried out after the confirmation ---------
        page.click("nav >> text=Subject requests")
        page.click("main >> text=Record a request")
        page.fill("#record-form input[name=subject_id]", sid)
        erase = record(
            page, kind="erase", channel="letter",
            reason="Letter asking to erase everything; signature matched the file",
        )  # fmt: skip
        page.goto(live.url + "/console/subject-requests?status=all")
        rows = page.locator("#requests tr")
        assert erase in rows.nth(1).inner_text() and stop in rows.nth(2).inner_text()
        shot(page, "subject-requests")
        page.click(f"text={erase}")
        page.click("#to-erase")
        page.fill("#erase textarea[name=note]", "Erased as the letter asked")
        shot(page, "subject-request-erase")
        page.click("#erase button[type=submit]")  # not sent: the box is not ticked
        assert page.url.endswith(f"/console/subject-requests/{erase}/erase")
        assert page.locator("#receipt").count() == 0
        page.check("#erase input[name=confirm]")
        page.click("#erase button[type=submit]")
        page.wait_for_url("**/console/subject-requests/*")
        assert page.inner_text("#status") == "Done"
        erased = page.inner_text("#receipt-erased")
        assert "subscribers\t1" in erased
        shot(page, "subject-request-receipt")
        gone = page.goto(live.url + f"/console/subscribers/{sid}")
        assert gone is not None and gone.status == 404
    finally:
        page.context.close()
