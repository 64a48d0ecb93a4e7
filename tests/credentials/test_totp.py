"""TOTP (RFC 6238): enrolment, required roles, login with a code, replay, recovery codes."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from app.core.config import Settings
from app.core.db import Database
from app.core.errors import AppError
from app.credentials import totp
from app.credentials.passwords import PasswordCheck
from app.staff import grants, sessions
from app.staff.auth import Staff
from app.staff.roles import Role
from tests.conftest import call
from tests.credentials.helpers import (
    TOTP_ON,
    code_at,
    enrol,
    enrolled_staff,
    invoke_async,
    login_with,
    use_cli,
)
from tests.staff.helpers import bearer, create_staff, dump, events, execute, login, rows


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return dict(TOTP_ON)


def account_row(app, username: str) -> dict[str, Any]:
    (row,) = rows(app, "SELECT * FROM staff_accounts WHERE username = :u", u=username)
    return row


def sessions_of(app, username: str) -> int:
    return len(
        rows(
            app,
            "SELECT s.id FROM staff_sessions s JOIN staff_accounts a ON a.id = s.staff_id "
            "WHERE a.username = :u",
            u=username,
        )
    )


async def test_a_required_role_without_totp_can_only_enrol(client, app, clock):
    await create_staff(app, "admin", username="root")
    answer = await login(client, "root")
    assert answer.status_code == 201
    assert answer.json()["restrictions"] == ["totp_enrolment_required"]
    headers = bearer(answer.json()["token"])

    refused = await client.get("/v1/staff", headers=headers)
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/totp-enrolment-required")
    # Even bad input is refused for the restriction first, not described.
    bad = await client.post("/v1/staff/invitations", json={"x": 1}, headers=headers)
    assert bad.status_code == 403
    me = await client.get("/v1/staff/me", headers=headers)
    assert me.status_code == 200 and me.json()["restrictions"] == ["totp_enrolment_required"]

    started = await client.post("/v1/staff/me/totp", headers=headers)
    assert started.status_code == 201
    assert started.headers["cache-control"] == "no-store"
    secret = started.json()["secret"]
    uri = urlparse(started.json()["provisioning_uri"])
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    assert uri.path == "/smsreg:root"
    assert parse_qs(uri.query) == {"secret": [secret], "issuer": ["smsreg"]}

    # A wrong first code: 422 on the field, nothing changes.
    wrong = await client.post(
        "/v1/staff/me/totp/confirm",
        json={"code": code_at(secret, clock.now(), steps=5)},
        headers=headers,
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "code"
    assert rows(app, "SELECT confirmed_at FROM staff_totp") == [{"confirmed_at": None}]
    assert rows(app, "SELECT id FROM staff_recovery_codes") == []

    confirmed = await client.post(
        "/v1/staff/me/totp/confirm", json={"code": code_at(secret, clock.now())}, headers=headers
    )
    assert confirmed.status_code == 200
    assert confirmed.headers["cache-control"] == "no-store"
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == len(set(codes)) == 10
    assert all(len(code) == 14 and code.count("-") == 2 for code in codes)
    # Enrolled: the same session may now do what the role allows.
    assert (await client.get("/v1/staff", headers=headers)).status_code == 200
    tags = [e["tag"] for e in rows(app, "SELECT tag FROM audit_events ORDER BY id")]
    assert "staff:totp:enrolled" in tags and "staff:recovery_codes:issued" in tags


async def test_secret_is_stored_encrypted_and_codes_hashed(client, app, clock):
    _headers, secret, codes = await enrolled_staff(app, client, clock, "admin", "root")
    stored = dump(app, "staff_totp")
    assert secret not in stored and secret.encode().hex() not in stored
    (row,) = rows(app, "SELECT secret_key_id FROM staff_totp")
    assert row["secret_key_id"] == "t1"
    hashes = dump(app, "staff_recovery_codes")
    for code in codes:
        assert code not in hashes and code.replace("-", "") not in hashes
    # Neither appears in the audit log either.
    audit = dump(app, "audit_events")
    assert secret not in audit and not any(code.replace("-", "") in audit for code in codes)


async def test_login_needs_the_code_once_enrolled(client, app, clock):
    _headers, secret, _codes = await enrolled_staff(app, client, clock, "privacy_officer", "po")
    clock.advance(seconds=30)
    before = sessions_of(app, "po")

    missing = await login(client, "po")
    assert missing.status_code == 401 and missing.json()["type"].endswith("/totp-required")
    assert missing.json()["errors"][0]["field"] == "totp"
    # A wrong password never reveals that a code would be needed.
    wrong_password = await login(client, "po", "not the password at all")
    assert wrong_password.json()["type"].endswith("/invalid-credentials")
    # A wrong password holds back its source only; a wrong code counts on the account.
    assert account_row(app, "po")["failed_logins"] == 0

    wrong = await login_with(client, "po", totp=code_at(secret, clock.now(), steps=3))
    assert wrong.status_code == 401 and wrong.json()["type"].endswith("/invalid-credentials")
    assert account_row(app, "po")["failed_logins"] == 1
    garbage = await login_with(client, "po", totp="12ab56")
    assert garbage.status_code == 401
    assert sessions_of(app, "po") == before  # no session for any of them
    reasons = [e["details"]["reason"] for e in events(app, "staff:login:failed")]
    assert reasons == ["wrong_password", "wrong_totp", "wrong_totp"]

    ok = await login_with(client, "po", totp=code_at(secret, clock.now()))
    assert ok.status_code == 201 and ok.json()["restrictions"] == []
    assert account_row(app, "po")["failed_logins"] == 0


async def test_a_used_code_cannot_be_replayed_within_its_window(client, app, clock):
    _headers, secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    clock.advance(seconds=30)
    code = code_at(secret, clock.now())
    assert (await login_with(client, "root", totp=code)).status_code == 201
    clock.advance(seconds=10)  # the same step: the code is still "current"
    replayed = await login_with(client, "root", totp=code)
    assert replayed.status_code == 401
    # The step before is within the allowed drift, but older than the one used.
    older = await login_with(client, "root", totp=code_at(secret, clock.now(), steps=-1))
    assert older.status_code == 401
    # The right code sent again (a double submit, logins at once) is no guess: refused,
    # recorded as a replay, and never counted towards the account's lockout (a source
    # that sends it again and again is throttled as any other).
    for _ in range(2):
        assert (await login_with(client, "root", totp=code)).status_code == 401
    assert account_row(app, "root")["failed_logins"] == 0
    reasons = [e["details"]["reason"] for e in events(app, "staff:login:failed")]
    assert reasons == ["replayed_totp"] * 4
    clock.advance(seconds=30)
    assert (await login_with(client, "root", totp=code_at(secret, clock.now()))).status_code == 201


async def test_drift_of_one_step_either_way(client, app, clock):
    _headers, secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    clock.advance(seconds=120)
    assert (
        await login_with(client, "root", totp=code_at(secret, clock.now(), steps=-2))
    ).status_code == 401
    assert (
        await login_with(client, "root", totp=code_at(secret, clock.now(), steps=-1))
    ).status_code == 201
    assert (
        await login_with(client, "root", totp=code_at(secret, clock.now(), steps=1))
    ).status_code == 201
    assert (
        await login_with(client, "root", totp=code_at(secret, clock.now(), steps=2))
    ).status_code == 401


async def test_each_recovery_code_works_once(client, app, clock):
    _headers, _secret, codes = await enrolled_staff(app, client, clock, "admin", "root")
    used = await login_with(client, "root", recovery_code=codes[0])
    assert used.status_code == 201
    (event,) = events(app, "staff:recovery_code:used")
    assert event["details"] == {"left": 9}

    # Sent again (a login sent twice, or several at once): refused, recorded as a replay,
    # and not counted towards the lockout (five such repeats locked the account; the
    # source's own throttle still counts them).
    for _ in range(3):
        again = await login_with(client, "root", recovery_code=codes[0])
        assert again.status_code == 401 and again.json()["type"].endswith("/invalid-credentials")
    assert account_row(app, "root")["failed_logins"] == 0
    reason = events(app, "staff:login:failed")[-1]["details"]["reason"]
    assert reason == "replayed_recovery_code"
    assert len(rows(app, "SELECT id FROM staff_recovery_codes WHERE used_at IS NULL")) == 9
    # A code that is none of the account's is a guess, and counts.
    wrong = await login_with(client, "root", recovery_code="aaaa-bbbb-cccc")
    assert wrong.status_code == 401 and account_row(app, "root")["failed_logins"] == 1
    assert events(app, "staff:login:failed")[-1]["details"]["reason"] == "wrong_recovery_code"

    # Typed in capitals and without dashes, another code still works, once.
    typed = codes[1].replace("-", "").upper()
    assert (await login_with(client, "root", recovery_code=typed)).status_code == 201
    assert (await login_with(client, "root", recovery_code=codes[1])).status_code == 401
    # And in full width, as a Japanese input method may type it.
    wide = codes[2].translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    assert wide != codes[2]
    assert (await login_with(client, "root", recovery_code=wide)).status_code == 201


async def test_a_login_with_both_second_factors_is_refused(client, app, clock):
    """One or the other: with both, the recovery code was neither used up nor refused."""
    _headers, secret, codes = await enrolled_staff(app, client, clock, "admin", "root")
    clock.advance(seconds=30)
    both = await login_with(
        client, "root", totp=code_at(secret, clock.now()), recovery_code=codes[0]
    )
    assert both.status_code == 422
    assert {e["field"] for e in both.json()["errors"]} == {"totp", "recovery_code"}
    assert len(rows(app, "SELECT id FROM staff_recovery_codes WHERE used_at IS NULL")) == 10
    assert (await login_with(client, "root", recovery_code=codes[0])).status_code == 201


async def test_new_recovery_codes_need_a_current_code(client, app, clock):
    headers, secret, old = await enrolled_staff(app, client, clock, "admin", "root")
    before = dump(app, "staff_recovery_codes")

    wrong = await client.post(
        "/v1/staff/me/totp/recovery-codes",
        json={"code": code_at(secret, clock.now(), steps=4)},
        headers=headers,
    )
    assert wrong.status_code == 422 and wrong.json()["type"].endswith("/wrong-code")
    assert dump(app, "staff_recovery_codes") == before  # nothing changed...
    assert account_row(app, "root")["failed_logins"] == 1  # ...but the guess counted

    clock.advance(seconds=30)
    fresh = await client.post(
        "/v1/staff/me/totp/recovery-codes",
        json={"code": code_at(secret, clock.now())},
        headers=headers,
    )
    assert fresh.status_code == 200
    new = fresh.json()["recovery_codes"]
    assert len(new) == 10 and not set(new) & set(old)
    assert (await login_with(client, "root", recovery_code=old[2])).status_code == 401
    assert (await login_with(client, "root", recovery_code=new[2])).status_code == 201


async def test_new_recovery_codes_asked_twice_with_one_code_lock_nothing(client, app, clock):
    """A double click sent the right code twice (or more): each repeat counted as a wrong
    code, and five locked the account for fifteen minutes."""
    headers, secret, _old = await enrolled_staff(app, client, clock, "admin", "root")
    clock.advance(seconds=30)
    body = {"code": code_at(secret, clock.now())}
    answers = [
        await client.post("/v1/staff/me/totp/recovery-codes", json=body, headers=headers)
        for _ in range(6)
    ]
    assert [a.status_code for a in answers] == [200, 422, 422, 422, 422, 422]
    assert account_row(app, "root")["failed_logins"] == 0
    assert account_row(app, "root")["locked_until"] is None
    clock.advance(seconds=30)
    again = await client.post(
        "/v1/staff/me/totp/recovery-codes", json={"code": code_at(secret, clock.now())},
        headers=headers,
    )  # fmt: skip
    assert again.status_code == 200


async def test_guessing_codes_with_a_session_locks_it_out(client, app, clock):
    headers, secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    for steps in range(4, 9):  # five wrong codes
        answer = await client.post(
            "/v1/staff/me/totp/recovery-codes",
            json={"code": code_at(secret, clock.now(), steps=steps)},
            headers=headers,
        )
        assert answer.status_code == 422
    clock.advance(seconds=30)
    locked = await client.post(
        "/v1/staff/me/totp/recovery-codes",
        json={"code": code_at(secret, clock.now())},
        headers=headers,
    )
    assert locked.status_code == 429 and locked.json()["type"].endswith("/too-many-failures")
    # The lockout holds for logins too, even with the right password and code.
    assert (await login_with(client, "root", totp=code_at(secret, clock.now()))).status_code == 401


async def test_wrong_codes_at_login_lock_the_account(client, app, clock):
    _headers, secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    for steps in range(4, 9):
        await login_with(client, "root", totp=code_at(secret, clock.now(), steps=steps))
    assert account_row(app, "root")["locked_until"] is not None
    clock.advance(seconds=30)
    # This source is throttled, and the account itself is locked from anywhere: only
    # someone with the password could send those codes.
    assert (await login_with(client, "root", totp=code_at(secret, clock.now()))).status_code == 429
    transport = httpx.ASGITransport(app=app, client=("198.51.100.30", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        elsewhere = await login_with(other, "root", totp=code_at(secret, clock.now()))
    assert elsewhere.status_code == 401
    clock.advance(minutes=15)
    assert (await login_with(client, "root", totp=code_at(secret, clock.now()))).status_code == 201


async def test_roles_without_the_requirement_may_enrol(client, app, clock):
    await create_staff(app, "operator", username="op")
    answer = await login(client, "op")
    assert answer.json()["restrictions"] == []
    headers = bearer(answer.json()["token"])
    status = await client.get("/v1/staff/me/totp", headers=headers)
    assert status.json() == {
        "enrolled": False,
        "pending": False,
        "confirmed_at": None,
        "required": False,
        "recovery_codes_left": 0,
    }
    secret, _codes = await enrol(client, headers, clock.now())
    assert (await client.get("/v1/staff/me/totp", headers=headers)).json()["enrolled"] is True
    again = await client.post("/v1/staff/me/totp", headers=headers)
    assert again.status_code == 409 and again.json()["type"].endswith("/totp-already-enrolled")
    clock.advance(seconds=30)
    assert (await login(client, "op")).status_code == 401  # enrolled: the code is needed now
    assert (await login_with(client, "op", totp=code_at(secret, clock.now()))).status_code == 201


async def test_confirm_without_an_enrolment(client, app):
    await create_staff(app, "operator", username="op")
    headers = bearer((await login(client, "op")).json()["token"])
    answer = await client.post(
        "/v1/staff/me/totp/confirm", json={"code": "123456"}, headers=headers
    )
    assert answer.status_code == 409 and answer.json()["type"].endswith("/totp-not-enrolled")
    for body in ({}, {"code": ""}, {"code": "1" * 17}, {"code": "123456", "x": 1}):
        bad = await client.post("/v1/staff/me/totp/confirm", json=body, headers=headers)
        assert bad.status_code == 422, body
    assert rows(app, "SELECT staff_id FROM staff_totp") == []


async def test_a_role_change_to_admin_requires_totp_at_once(client, app, clock):
    admin_headers, _secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    op = await create_staff(app, "operator", username="op")
    op_headers = bearer((await login(client, "op")).json()["token"])
    proposed = await client.post(
        f"/v1/staff/{op.id}/grants", json={"role": "admin"}, headers=admin_headers
    )
    assert proposed.status_code == 201, proposed.text
    second = await create_staff(app, "admin", username="root2")
    confirmer = Staff(
        id=second.id, username="root2", display_name="R", role=Role.ADMIN, session_id="ses_x"
    )
    await call(app, grants.confirm, staff=confirmer, grant_id=proposed.json()["id"])
    refused = await client.get("/v1/staff", headers=op_headers)
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/totp-enrolment-required")


async def test_admin_resets_a_lost_second_factor(client, app, clock):
    admin_headers, _s, _c = await enrolled_staff(app, client, clock, "admin", "root")
    po_headers, _secret, _codes = await enrolled_staff(app, client, clock, "privacy_officer", "po")
    po_id = account_row(app, "po")["id"]
    root_id = account_row(app, "root")["id"]

    own = await client.delete(f"/v1/staff/{root_id}/totp", headers=admin_headers)
    assert own.status_code == 403 and own.json()["type"].endswith("/own-account")
    unknown = await client.delete("/v1/staff/stf_nobody/totp", headers=admin_headers)
    assert unknown.status_code == 404
    assert len(rows(app, "SELECT staff_id FROM staff_totp")) == 2

    reset = await client.delete(f"/v1/staff/{po_id}/totp", headers=admin_headers)
    assert reset.status_code == 200
    assert reset.json() == {
        "staff_id": po_id,
        "had_totp": True,
        "recovery_codes_removed": 10,
        "sessions_ended": 2,  # the enrolling session and the later login
    }
    assert (await client.get("/v1/staff/me", headers=po_headers)).status_code == 401
    again = await login(client, "po")  # no code needed, but the session can only enrol
    assert again.status_code == 201
    assert again.json()["restrictions"] == ["totp_enrolment_required"]
    (event,) = events(app, "staff:totp:reset")
    assert event["actor"] == f"staff:{root_id}" and event["subject"] == po_id


async def test_a_secret_under_a_removed_phone_key_fails_closed(client, app, clock):
    _headers, secret, codes = await enrolled_staff(app, client, clock, "admin", "root")
    execute(app, "UPDATE staff_totp SET secret_key_id = 'gone'")
    clock.advance(seconds=30)
    refused = await login_with(client, "root", totp=code_at(secret, clock.now()))
    assert refused.status_code == 401  # refused, not a 500
    # The recovery codes still let the person in (to have an admin reset the TOTP).
    assert (await login_with(client, "root", recovery_code=codes[0])).status_code == 201


async def test_concurrent_logins_with_one_code_open_one_session(client, app, clock):
    """Four logins with the same code at once, each on its own connection: one wins."""
    account = await create_staff(app, "operator", username="op")
    enrolment = await call(
        app, totp.start_enrolment, staff_id=account.id, username="op", actor="test"
    )
    execute(app, "UPDATE staff_totp SET confirmed_at = created_at")
    start = await call(app, sessions.start_login, username="op", ip="192.0.2.1")
    code = code_at(enrolment.secret, clock.now())
    ready = threading.Barrier(4)

    def attempt(_: int) -> str:
        async def finish() -> str:
            db = Database(app.state.db.url)  # its own connection, as another process
            try:
                async with db.transaction() as tx:
                    await sessions.finish_login(
                        tx,
                        app.state.ctx,
                        start=start,
                        check=PasswordCheck(ok=True),
                        ip="192.0.2.1",
                        totp_code=code,
                    )
            except AppError as refused:
                return refused.slug
            finally:
                await db.dispose()
            return "opened"

        ready.wait(timeout=30)
        return asyncio.run(finish())

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = sorted(pool.map(attempt, range(4)))
    assert outcomes == ["invalid-credentials"] * 3 + ["opened"]


def test_privacy_officers_and_admins_need_totp_by_default():
    assert Settings.model_fields["totp_required_roles"].default == ["privacy_officer", "admin"]


async def test_the_command_line_resets_totp(client, app, clock, settings, monkeypatch):
    clock.set(dt.datetime.now(dt.UTC))  # the command line runs on the system clock
    headers, _secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    use_cli(settings, monkeypatch)
    assert (await invoke_async("staff", "reset-totp", "nobody")).exit_code == 1
    done = await invoke_async("staff", "reset-totp", "root")
    assert done.exit_code == 0, done.output
    assert "TOTP removed, 10 recovery code(s) removed, 2 session(s) ended" in done.output
    assert (await client.get("/v1/staff/me", headers=headers)).status_code == 401
    assert rows(app, "SELECT staff_id FROM staff_totp") == []
    (event,) = events(app, "staff:totp:reset")
    assert event["actor"] == "cli"


@pytest.mark.parametrize("typed", ["é", "１２３４５６", "12345６", "１２３\u00a0４５６x", "٠١٢٣٤٥"])
async def test_an_odd_code_is_a_wrong_code_never_a_500(client, app, clock, typed):
    """Whatever is typed after a right password: refused as a wrong code (before and
    after a login used a code), never an error."""
    _headers, secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    clock.advance(seconds=30)
    assert (await login_with(client, "root", totp=typed)).status_code == 401
    assert (await login_with(client, "root", totp=code_at(secret, clock.now()))).status_code == 201
    assert (await login_with(client, "root", totp=typed)).status_code == 401


async def test_a_code_in_full_width_digits_is_read_as_typed(client, app, clock):
    _headers, secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    clock.advance(seconds=30)
    code = code_at(secret, clock.now()).translate(
        str.maketrans("0123456789", "０１２３４５６７８９")
    )
    assert (await login_with(client, "root", totp=code)).status_code == 201
