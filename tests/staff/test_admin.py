"""Admins manage staff: list, change roles, disable; every change in the history."""

from __future__ import annotations

import datetime as dt

import pytest

from app.core.errors import AppError
from app.staff import accounts
from tests.conftest import call, count_rows
from tests.fixtures.staff import open_session
from tests.staff.helpers import (
    OWN_PASSWORD,
    PASSWORD,
    bearer,
    create_staff,
    events,
    login,
    rows,
    staff_auth,
)
from tests.staff.test_invitations import invite


async def test_admins_and_auditors_read_the_staff_list(client, app):
    for role in ("operator", "privacy_officer", "auditor"):
        headers = await staff_auth(app, client, role)
        listed = await client.get("/v1/staff", headers=headers)
        assert listed.status_code == (200 if role == "auditor" else 403), role
        invited = await client.post(
            "/v1/staff/invitations",
            json={
                "username": "x-" + role.replace("_", "-"),
                "display_name": "X",
                "role": "operator",
            },
            headers=headers,
        )
        assert invited.status_code == 403, role
    assert count_rows(app, "staff_accounts") == 3


async def test_change_role_records_the_history(client, app):
    admin = await staff_auth(app, client, "admin", username="root")
    target = await create_staff(app, "operator", username="hanako")
    answer = await client.put(
        f"/v1/staff/{target.id}/role", json={"role": "auditor"}, headers=admin
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["role"] == "auditor"
    same = await client.put(f"/v1/staff/{target.id}/role", json={"role": "auditor"}, headers=admin)
    assert same.status_code == 200  # nothing changes, nothing is recorded
    history = rows(
        app,
        "SELECT change, old_role, new_role, actor, confirmed_by FROM staff_permission_history "
        "WHERE staff_id = :id ORDER BY id",
        id=target.id,
    )
    admin_id = rows(app, "SELECT id FROM staff_accounts WHERE username = 'root'")[0]["id"]
    assert history == [
        {
            "change": "change",
            "old_role": "operator",
            "new_role": "auditor",
            "actor": f"staff:{admin_id}",
            "confirmed_by": None,
        },
    ]
    changed = events(app, "staff:account:role_changed")
    assert [e["details"] for e in changed] == [{"from": "operator", "to": "auditor"}]
    # A privileged role is never changed by one admin alone.
    for role in ("privacy_officer", "admin"):
        refused = await client.put(
            f"/v1/staff/{target.id}/role", json={"role": role}, headers=admin
        )
        assert refused.status_code == 409, role
    assert rows(app, "SELECT role FROM staff_accounts WHERE id = :id", id=target.id) == [
        {"role": "auditor"}
    ]


async def test_an_admin_cannot_change_or_disable_their_own_account(client, app):
    admin = await staff_auth(app, client, "admin", username="root")
    own = rows(app, "SELECT id FROM staff_accounts")[0]["id"]
    await create_staff(app, "admin", username="second-admin")
    for answer in (
        await client.put(f"/v1/staff/{own}/role", json={"role": "operator"}, headers=admin),
        await client.post(f"/v1/staff/{own}/disable", headers=admin),
    ):
        assert answer.status_code == 403 and answer.json()["type"].endswith("/own-account")
    assert rows(app, "SELECT role FROM staff_accounts WHERE id = :id", id=own)[0]["role"] == "admin"


async def test_the_last_admin_is_never_removed(client, app):
    only = await create_staff(app, "admin", username="root")
    with pytest.raises(AppError) as refused:
        await call(app, accounts.disable, staff=None, account_id=only.id)
    assert refused.value.slug == "last-admin"
    second = await create_staff(app, "admin", username="second")
    await call(app, accounts.disable, staff=None, account_id=second.id)
    assert (
        rows(app, "SELECT disabled_at FROM staff_accounts WHERE id = :id", id=only.id)[0][
            "disabled_at"
        ]
        is None
    )


async def test_disable_records_the_revocation(client, app):
    admin = await staff_auth(app, client, "admin")
    target = await create_staff(app, "privacy_officer", username="sato")
    answer = await client.post(f"/v1/staff/{target.id}/disable", headers=admin)
    assert answer.status_code == 200, answer.text
    assert answer.json()["disabled_at"] is not None
    history = rows(
        app,
        "SELECT change, old_role, new_role FROM staff_permission_history "
        "WHERE staff_id = :id ORDER BY id",
        id=target.id,
    )
    assert history[-1] == {"change": "revoke", "old_role": "privacy_officer", "new_role": None}
    assert len(events(app, "staff:account:disabled")) == 1

    again = await client.post(f"/v1/staff/{target.id}/disable", headers=admin)
    assert again.status_code == 409 and again.json()["type"].endswith("/staff-account-disabled")
    role = await client.put(f"/v1/staff/{target.id}/role", json={"role": "admin"}, headers=admin)
    assert role.status_code == 409
    assert (await login(client, "sato", PASSWORD)).status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/staff/{id}/role", {"role": "root"}),
        ("PUT", "/v1/staff/{id}/role", {}),
        ("PUT", "/v1/staff/{id}/role", {"role": "operator", "why": "x"}),
        ("PUT", "/v1/staff/bad id/role", {"role": "operator"}),
        ("POST", "/v1/staff/x/disable", None),
        ("GET", "/v1/staff/sub_notstaff", None),
    ],
)
async def test_admin_bad_input(client, app, method, path, body):
    admin = await staff_auth(app, client, "admin")
    target = await create_staff(app, "operator", username="hanako")
    before = count_rows(app, "staff_permission_history")
    answer = await client.request(method, path.format(id=target.id), json=body, headers=admin)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"]
    assert count_rows(app, "staff_permission_history") == before


async def test_unknown_accounts_are_404(client, app):
    admin = await staff_auth(app, client, "admin")
    for method, path, body in (
        ("PUT", "/v1/staff/stf_nobody/role", {"role": "operator"}),
        ("POST", "/v1/staff/stf_nobody/disable", None),
        ("GET", "/v1/staff/stf_nobody", None),
    ):
        answer = await client.request(method, path, json=body, headers=admin)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["type"].endswith("/staff-not-found")


@pytest.mark.parametrize("disabled", ["target", "proposer"])
async def test_disabling_an_account_cancels_the_proposals_that_name_it_or_it_made(
    client, app, disabled
):
    """Neither can be confirmed any more: they end with the account instead of waiting on
    the admins' list until they expire."""
    proposer_account = await create_staff(app, "admin", username="proposer")
    deciding = await staff_auth(app, client, "admin", username="deciding")
    by = bearer(await open_session(app, proposer_account))
    target = await create_staff(app, "auditor", username="aud")
    made = await client.post(f"/v1/staff/{target.id}/grants", json={"role": "admin"}, headers=by)
    assert made.status_code == 201, made.text
    assert [
        g["id"] for g in (await client.get("/v1/staff/grants", headers=deciding)).json()["grants"]
    ] == [made.json()["id"]]
    account = target if disabled == "target" else proposer_account
    off = await client.post(f"/v1/staff/{account.id}/disable", headers=deciding)
    assert off.status_code == 200, off.text
    assert (await client.get("/v1/staff/grants", headers=deciding)).json()["grants"] == []
    assert len(events(app, "staff:grant:cancelled")) == 1


async def test_demoting_an_admin_cancels_the_proposals_they_made(client, app):
    """A demoted admin's proposal no longer has an admin behind it: confirmed later, it
    would grant a role on the word of an operator."""
    proposer_account = await create_staff(app, "admin", username="proposer")
    deciding = await staff_auth(app, client, "admin", username="deciding")
    by = bearer(await open_session(app, proposer_account))
    target = await create_staff(app, "operator", username="op2")
    made = await client.post(
        f"/v1/staff/{target.id}/grants", json={"role": "privacy_officer"}, headers=by
    )
    assert made.status_code == 201, made.text
    demoted = await client.put(
        f"/v1/staff/{proposer_account.id}/role", json={"role": "operator"}, headers=deciding
    )
    assert demoted.status_code == 200, demoted.text
    assert (await client.get("/v1/staff/grants", headers=deciding)).json()["grants"] == []
    late = await client.post(f"/v1/staff/grants/{made.json()['id']}/confirm", headers=deciding)
    assert late.status_code == 409 and late.json()["type"].endswith("/grant-not-pending")
    assert len(events(app, "staff:grant:cancelled")) == 1


async def granted(client, account_id: str, role: str, *, proposer, confirmer) -> None:
    """A role given the four-eyes way: proposed by one admin, confirmed by another."""
    proposed = await client.post(
        f"/v1/staff/{account_id}/grants", json={"role": role}, headers=proposer
    )
    assert proposed.status_code == 201, proposed.text
    confirmed = await client.post(
        f"/v1/staff/grants/{proposed.json()['id']}/confirm", headers=confirmer
    )
    assert confirmed.status_code == 200, confirmed.text


async def test_a_proposal_is_confirmed_only_while_its_proposer_is_an_admin(client, app, clock):
    """Made privacy officer through a confirmed proposal, the proposer's pending proposal
    is cancelled, as on a direct demotion (it stayed pending, blocking a new proposal for
    its account); and a proposal whose proposer is no admin any more, however that came
    about, has no admin behind it."""
    from app.staff import repository as staff_repo

    proposer_account = await create_staff(app, "admin", username="proposer")
    second = await staff_auth(app, client, "admin", username="second")
    third = await staff_auth(app, client, "admin", username="third")
    by = bearer(await open_session(app, proposer_account))
    target = await create_staff(app, "operator", username="op9")
    made = await client.post(f"/v1/staff/{target.id}/grants", json={"role": "admin"}, headers=by)
    assert made.status_code == 201, made.text
    clock.advance(seconds=1)
    await granted(client, proposer_account.id, "privacy_officer", proposer=second, confirmer=third)
    (row,) = rows(app, "SELECT status FROM staff_role_grants WHERE id = :g", g=made.json()["id"])
    assert row == {"status": "cancelled"}
    late = await client.post(f"/v1/staff/grants/{made.json()['id']}/confirm", headers=second)
    assert late.status_code == 409 and late.json()["type"].endswith("/grant-not-pending")
    # A new proposal for the account is not blocked by the cancelled one.
    again = await client.post(
        f"/v1/staff/{target.id}/grants", json={"role": "admin"}, headers=second
    )
    assert again.status_code == 201, again.text
    # Made admin again, the proposer does not bring the old proposal back to life.
    await granted(client, proposer_account.id, "admin", proposer=second, confirmer=third)
    later = await client.post(f"/v1/staff/grants/{made.json()['id']}/confirm", headers=second)
    assert later.status_code == 409, later.text
    # A proposal whose proposer lost the role by a way that cancels nothing (here the
    # database edited) is refused all the same.
    clock.advance(seconds=1)
    other = await create_staff(app, "operator", username="op10")
    by = bearer(await open_session(app, proposer_account))
    pending = await client.post(f"/v1/staff/{other.id}/grants", json={"role": "admin"}, headers=by)
    assert pending.status_code == 201, pending.text
    async with app.state.db.transaction() as tx:
        await staff_repo.update_account(tx, proposer_account.id, role="operator")
    refused = await client.post(f"/v1/staff/grants/{pending.json()['id']}/confirm", headers=third)
    assert refused.status_code == 409 and "no longer an admin" in refused.json()["detail"]
    assert rows(app, "SELECT role FROM staff_accounts WHERE username IN ('op9', 'op10')") == [
        {"role": "operator"},
        {"role": "operator"},
    ]


async def test_disabling_an_admin_revokes_their_privileged_invitation_on_the_record(client, app):
    """A privileged invitation waits for a second admin's confirmation; when its proposer
    is disabled, the invitation is revoked as any: recorded, its account disabled."""
    proposer_account = await create_staff(app, "admin", username="proposer")
    deciding = await staff_auth(app, client, "admin", username="deciding")
    by = bearer(await open_session(app, proposer_account))
    invited = await invite(client, by, "po-new", "privacy_officer")
    assert invited["grant"]["status"] == "pending"
    off = await client.post(f"/v1/staff/{proposer_account.id}/disable", headers=deciding)
    assert off.status_code == 200, off.text
    assert len(events(app, "staff:invitation:revoked")) == 1
    assert len(events(app, "staff:grant:cancelled")) == 1
    (account,) = rows(app, "SELECT id, disabled_at FROM staff_accounts WHERE username = 'po-new'")
    assert account["disabled_at"] is not None
    history = rows(
        app, "SELECT change FROM staff_permission_history WHERE staff_id = :s", s=account["id"]
    )
    assert history[-1] == {"change": "revoke"}


@pytest.mark.parametrize("how", ["disable", "demote"])
async def test_an_admin_disabled_or_demoted_leaves_no_invitation_open(client, app, clock, how):
    """The inviting admin saw every token they made: disabled or demoted, they could take
    up an operator's account of their own making with one. Their open invitations end
    with their role (an unprivileged one has no proposal to cancel with it)."""
    leaving_account = await create_staff(app, "admin", username="leaving")
    deciding = await staff_auth(app, client, "admin", username="deciding")
    leaving = bearer(await open_session(app, leaving_account))
    made = await invite(client, leaving, username="newop", role="operator")
    kept = await invite(client, deciding, username="otherop", role="auditor")
    if how == "disable":
        off = await client.post(f"/v1/staff/{leaving_account.id}/disable", headers=deciding)
    else:
        off = await client.put(
            f"/v1/staff/{leaving_account.id}/role", json={"role": "operator"}, headers=deciding
        )
    assert off.status_code == 200, off.text
    refused = await client.post(
        "/v1/staff/enrolment", json={"token": made["token"], "password": OWN_PASSWORD}
    )
    assert refused.status_code == 401, refused.text
    taken = await client.post(
        "/v1/staff/enrolment", json={"token": kept["token"], "password": OWN_PASSWORD}
    )
    assert taken.status_code != 401, taken.text  # another admin's invitation stands
    assert [e["details"]["invitation_id"] for e in events(app, "staff:invitation:revoked")] == [
        made["invitation"]["id"]
    ]


async def test_an_invitation_is_taken_up_only_while_its_admin_can_act(client, app, clock):
    """However its admin stopped being one (here made privacy officer through a confirmed
    proposal, which revokes nothing of theirs), the token they saw opens no account."""
    inviting_account = await create_staff(app, "admin", username="inviting")
    second = await staff_auth(app, client, "admin", username="second")
    third = await staff_auth(app, client, "admin", username="third")
    made = await invite(
        client, bearer(await open_session(app, inviting_account)), "newaud", "auditor"
    )
    clock.advance(seconds=1)
    await granted(client, inviting_account.id, "privacy_officer", proposer=second, confirmer=third)
    refused = await client.post(
        "/v1/staff/enrolment", json={"token": made["token"], "password": OWN_PASSWORD}
    )
    assert refused.status_code == 401, refused.text
    assert refused.json()["type"].endswith("/invalid-invitation")
    # Revoked with the move, not left listed as open for good.
    listed = await client.get("/v1/staff/invitations", headers=second)
    assert listed.json()["invitations"] == []
    # Made admin again later, they do not bring the token they saw back to life.
    await granted(client, inviting_account.id, "admin", proposer=second, confirmer=third)
    again = await client.post(
        "/v1/staff/enrolment", json={"token": made["token"], "password": OWN_PASSWORD}
    )
    assert again.status_code == 401, again.text


async def test_an_admins_own_promotion_stamped_later_does_not_void_what_they_make(
    client, app, clock
):
    """Processes' clocks differ: the entry that made an account admin may be stamped
    after an invitation the new admin made at once. Only leaving the role counts."""
    second = await staff_auth(app, client, "admin", username="second")
    third = await staff_auth(app, client, "admin", username="third")
    promoted = await create_staff(app, "operator", username="promoted")
    clock.advance(seconds=5)  # the process that confirms runs ahead
    await granted(client, promoted.id, "admin", proposer=second, confirmer=third)
    clock.set(clock.now() - dt.timedelta(seconds=3))  # the next request's process does not
    made = await invite(client, bearer(await open_session(app, promoted)), "newop", "operator")
    taken = await client.post(
        "/v1/staff/enrolment", json={"token": made["token"], "password": OWN_PASSWORD}
    )
    assert taken.status_code == 200, taken.text
