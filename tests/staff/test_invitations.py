"""Invitations and role grants under four eyes: nobody but the owner knows an account's
password or second factor, and no single admin can make a privacy officer or an admin."""

from __future__ import annotations

import pyotp
import pytest

from app.staff import invitations
from tests.conftest import call, count_rows
from tests.staff.helpers import (
    OWN_PASSWORD,
    bearer,
    create_staff,
    enrol,
    events,
    login,
    rows,
    staff_auth,
)


async def invite(client, admin, username="hanako", role="operator"):
    answer = await client.post(
        "/v1/staff/invitations",
        json={"username": username, "display_name": "Hanako Yamada", "role": role},
        headers=admin,
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    return answer.json()


async def login_totp(client, clock, username, secret, password=OWN_PASSWORD):
    clock.advance(seconds=30)  # a fresh step: the enrolment's code is used up
    return await client.post(
        "/v1/staff/sessions",
        json={
            "username": username,
            "password": password,
            "totp": pyotp.TOTP(secret).at(clock.now()),
        },
    )


async def test_an_invited_person_sets_their_own_password_and_totp(client, app, clock):
    admin = await staff_auth(app, client, "admin", username="root")
    made = await invite(client, admin)
    token = made["token"]
    assert token.startswith("smsreg_inv_") and made["grant"] is None
    assert made["account"]["activation_pending"] is True
    # Nothing the admin saw opens the account: it has no usable password yet.
    assert (await login(client, "hanako", token)).status_code == 401
    assert token not in str(rows(app, "SELECT * FROM staff_invitations"))
    listed = await client.get("/v1/staff/invitations", headers=admin)
    assert [i["account"]["username"] for i in listed.json()["invitations"]] == ["hanako"]

    # A password alone does not make the account usable: TOTP must be enrolled too.
    started = await client.post(
        "/v1/staff/enrolment", json={"token": token, "password": OWN_PASSWORD}
    )
    assert started.status_code == 200
    assert (await login(client, "hanako", OWN_PASSWORD)).status_code == 401
    done, secret = await enrol(client, clock, token)
    assert done["active"] is True and len(done["recovery_codes"]) == 10
    ok = await login_totp(client, clock, "hanako", secret)
    assert ok.status_code == 201, ok.text

    # Single use: the token is spent.
    again = await client.post("/v1/staff/enrolment", json={"token": token, "password": "x" * 20})
    assert again.status_code == 401 and again.json()["type"].endswith("/invalid-invitation")
    assert (await client.get("/v1/staff/invitations", headers=admin)).json()["invitations"] == []
    history = rows(app, "SELECT change, new_role, actor FROM staff_permission_history")
    assert history == [
        {"change": "grant", "new_role": "operator", "actor": made["account"]["created_by"]}
    ]


async def test_an_invitation_expires_and_can_be_revoked(client, app, clock):
    admin = await staff_auth(app, client, "admin", username="root")
    old = await invite(client, admin, "late")
    clock.advance(hours=72)
    late = await client.post(
        "/v1/staff/enrolment", json={"token": old["token"], "password": OWN_PASSWORD}
    )
    assert late.status_code == 401
    admin = await staff_auth(app, client, "admin", username="root2")  # the session idled out
    fresh = await invite(client, admin, "fresh")
    url = f"/v1/staff/invitations/{fresh['invitation']['id']}"
    assert (await client.delete(url, headers=admin)).status_code == 200
    assert (await client.delete(url, headers=admin)).status_code == 404
    refused = await client.post(
        "/v1/staff/enrolment", json={"token": fresh["token"], "password": OWN_PASSWORD}
    )
    assert refused.status_code == 401
    state = rows(app, "SELECT disabled_at FROM staff_accounts WHERE username = 'fresh'")
    assert state[0]["disabled_at"] is not None


@pytest.mark.parametrize("role", ["operator", "auditor"])
async def test_an_invited_account_disabled_before_it_is_taken_up_cannot_be(client, app, role):
    """Its invitation stayed open (listed, its token working), and taking it up answered
    `active: true` for a disabled account."""
    admin = await staff_auth(app, client, "admin", username="root")
    made = await invite(client, admin, "changed-mind", role)
    off = await client.post(f"/v1/staff/{made['account']['id']}/disable", headers=admin)
    assert off.status_code == 200, off.text
    assert (await client.get("/v1/staff/invitations", headers=admin)).json()["invitations"] == []
    taken = await client.post(
        "/v1/staff/enrolment", json={"token": made["token"], "password": OWN_PASSWORD}
    )
    assert taken.status_code == 401 and taken.json()["type"].endswith("/invalid-invitation")
    assert len(events(app, "staff:invitation:revoked")) == 1


async def test_a_stranger_never_costs_a_password_hash(client, app, monkeypatch):
    from app.credentials import passwords

    hashed: list[str] = []
    monkeypatch.setattr(passwords, "hash_password_sync", lambda s, p: hashed.append(p) or "x")
    for token in ("smsreg_inv_" + "x" * 43, "nonsense"):
        answer = await client.post(
            "/v1/staff/enrolment", json={"token": token, "password": OWN_PASSWORD}
        )
        assert answer.status_code == 401
    assert hashed == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "ab", "display_name": "x", "role": "operator"}, "username"),
        ({"username": "abc", "display_name": " ", "role": "operator"}, "display_name"),
        # A Hangul filler is printable, yet shows nothing: a name that looks empty.
        ({"username": "abc", "display_name": "\u3164", "role": "operator"}, "display_name"),
        ({"username": "abc", "display_name": "x", "role": "root"}, "role"),
        ({"username": "abc", "display_name": "x", "role": "operator", "password": "x"}, "password"),
    ],
)
async def test_invitation_bad_input(client, app, body, field):
    admin = await staff_auth(app, client, "admin", username="root")
    answer = await client.post("/v1/staff/invitations", json=body, headers=admin)
    assert answer.status_code == 422 and field in {e["field"] for e in answer.json()["errors"]}
    assert count_rows(app, "staff_invitations") == 0


async def test_nobody_chooses_a_password_for_someone_else(client, app):
    """The old route that took a password from the admin is gone."""
    admin = await staff_auth(app, client, "admin", username="root")
    body = {"username": "puppet", "display_name": "P", "role": "operator", "password": "x" * 20}
    answer = await client.post("/v1/staff", json=body, headers=admin)
    assert answer.status_code == 405
    assert rows(app, "SELECT id FROM staff_accounts WHERE username = 'puppet'") == []


async def test_a_privileged_invitation_waits_for_a_second_admin(client, app, clock):
    first = await create_staff(app, "admin", username="root")
    root = bearer(await _session(app, first))
    second = await staff_auth(app, client, "admin", username="root2")
    made = await invite(client, root, "sato", "privacy_officer")
    grant = made["grant"]
    assert grant["status"] == "pending" and grant["proposed_by"] == f"staff:{first.id}"
    # The proposer cannot confirm their own proposal.
    own = await client.post(f"/v1/staff/grants/{grant['id']}/confirm", headers=root)
    assert own.status_code == 403 and own.json()["type"].endswith("/grant-own-proposal")
    # Nor can the second admin before anyone has taken the invitation up: the inviting
    # admin holds the token, and would enrol a second admin of their own.
    early = await client.post(f"/v1/staff/grants/{grant['id']}/confirm", headers=second)
    assert early.status_code == 409 and early.json()["type"].endswith("/invitation-not-taken-up")
    assert rows(app, "SELECT status FROM staff_role_grants") == [{"status": "pending"}]
    (listed,) = (await client.get("/v1/staff/grants", headers=second)).json()["grants"]
    assert (listed["enrolled_at"], listed["enrolled_from"]) == (None, None)

    done, secret = await enrol(client, clock, made["token"])
    # The second admin sees when and from where the person enrolled before confirming.
    (listed,) = (await client.get("/v1/staff/grants", headers=second)).json()["grants"]
    assert listed["enrolled_at"] is not None and listed["enrolled_from"]
    assert done["active"] is False
    assert (await login_totp(client, clock, "sato", secret)).status_code == 401

    confirmed = await client.post(f"/v1/staff/grants/{grant['id']}/confirm", headers=second)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "confirmed"
    # The answer names the enrolment as the list does (it said null).
    assert (confirmed.json()["enrolled_at"], confirmed.json()["enrolled_from"]) == (
        listed["enrolled_at"],
        listed["enrolled_from"],
    )
    assert (await login_totp(client, clock, "sato", secret)).status_code == 201
    # A later promotion of the same account is no invitation: no enrolment of its own.
    promoted = await client.post(
        f"/v1/staff/{made['account']['id']}/grants", json={"role": "admin"}, headers=root
    )
    grant_url = f"/v1/staff/grants/{promoted.json()['id']}/confirm"
    assert (await client.post(grant_url, headers=second)).status_code == 200
    listed = (await client.get("/v1/staff/grants?status=confirmed", headers=second)).json()
    assert {g["kind"]: g["enrolled_at"] is not None for g in listed["grants"]} == {
        "invitation": True,
        "change": False,
    }
    second_id = rows(app, "SELECT id FROM staff_accounts WHERE username = 'root2'")[0]["id"]
    history = await client.get(f"/v1/staff/{made['account']['id']}", headers=second)
    assert [
        (h["change"], h["new_role"], h["actor"], h["confirmed_by"])
        for h in history.json()["permission_history"]
    ] == [
        ("grant", "privacy_officer", f"staff:{first.id}", f"staff:{second_id}"),
        ("change", "admin", f"staff:{first.id}", f"staff:{second_id}"),
    ]


async def test_a_promotion_is_a_proposal_and_a_rejection_ends_it(client, app):
    first = await create_staff(app, "admin", username="root")
    root = bearer(await _session(app, first))
    second = await staff_auth(app, client, "admin", username="root2")
    target = await create_staff(app, "operator", username="tanaka")
    direct = await client.put(f"/v1/staff/{target.id}/role", json={"role": "admin"}, headers=root)
    assert direct.status_code == 409
    assert direct.json()["type"].endswith("/grant-needs-second-admin")
    # Lower roles change directly.
    lower = await client.put(f"/v1/staff/{target.id}/role", json={"role": "auditor"}, headers=root)
    assert lower.status_code == 200 and lower.json()["role"] == "auditor"
    proposed = await client.post(
        f"/v1/staff/{target.id}/grants", json={"role": "admin"}, headers=root
    )
    assert proposed.status_code == 201, proposed.text
    grant_id = proposed.json()["id"]
    twice = await client.post(f"/v1/staff/{target.id}/grants", json={"role": "admin"}, headers=root)
    assert twice.status_code == 409
    pending = await client.get("/v1/staff/grants", headers=second)
    assert [g["id"] for g in pending.json()["grants"]] == [grant_id]
    for bad in ("withdrawn \x00 by proposer", "esc \x1b[31m red", "c1 \x9b"):
        refused = await client.post(  # a NUL answered 500 on PostgreSQL
            f"/v1/staff/grants/{grant_id}/reject", json={"reason": bad}, headers=second
        )
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "reason"
    rejected = await client.post(
        f"/v1/staff/grants/{grant_id}/reject", json={"reason": "not needed"}, headers=second
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    late = await client.post(f"/v1/staff/grants/{grant_id}/confirm", headers=second)
    assert late.status_code == 409
    assert rows(app, "SELECT role FROM staff_accounts WHERE id = :id", id=target.id) == [
        {"role": "auditor"}
    ]
    proposed = await client.post(
        f"/v1/staff/{target.id}/grants", json={"role": "privacy_officer"}, headers=root
    )
    confirmed = await client.post(
        f"/v1/staff/grants/{proposed.json()['id']}/confirm", headers=second
    )
    assert confirmed.status_code == 200
    assert rows(app, "SELECT role FROM staff_accounts WHERE id = :id", id=target.id) == [
        {"role": "privacy_officer"}
    ]
    assert len(events(app, "staff:grant:confirmed")) == 1


async def test_a_proposal_expires(client, app, clock):
    first = await create_staff(app, "admin", username="root")
    root = bearer(await _session(app, first))
    second = await staff_auth(app, client, "admin", username="root2")
    target = await create_staff(app, "operator", username="tanaka")
    made = await client.post(f"/v1/staff/{target.id}/grants", json={"role": "admin"}, headers=root)
    clock.advance(hours=72)
    second = await staff_auth(app, client, "admin", username="root3")  # sessions idled out
    late = await client.post(f"/v1/staff/grants/{made.json()['id']}/confirm", headers=second)
    assert late.status_code == 409 and "expired" in late.json()["detail"]
    assert (await client.get("/v1/staff/grants", headers=second)).json()["grants"] == []


async def _session(app, account) -> str:
    from tests.fixtures.staff import open_session

    return await open_session(app, account)


async def test_service_functions_for_the_console(app, clock):
    """The console calls the same services: an invitation's token is checked alike."""
    with pytest.raises(invitations.InvalidInvitation):
        await call(app, invitations.check_token, token="smsreg_inv_unknown")
