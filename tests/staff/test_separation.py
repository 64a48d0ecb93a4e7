"""Separation of duties: one admin working alone through puppet accounts fails at every
step; independent eyes on a disclosure; offboarding an admin ends what they set in
motion; break-glass expires."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from app.core.errors import AppError
from app.credentials import passwords
from app.ledger import workflow
from app.staff import accounts, bootstrap
from app.staff import repository as staff_repo
from app.staff.new_account import NewAccount
from app.staff.roles import Role
from tests.conftest import call, sync_engine
from tests.fixtures.staff import open_session
from tests.ledger.conftest import IP, add_subscriber, number, request_data, staff
from tests.staff.helpers import bearer, create_staff, events, login, rows, staff_auth
from tests.staff.test_invitations import OWN_PASSWORD, enrol, invite, login_totp


async def test_the_puppet_attack_fails_at_every_step(client, app, clock):
    """One admin alone tries to make two privacy officers and use them."""
    admin_account = await create_staff(app, "admin", username="mallory")
    admin = bearer(await open_session(app, admin_account))
    # 1. An account with a password the admin chose: the route is gone.
    chosen = {
        "username": "po1",
        "display_name": "P",
        "role": "privacy_officer",
        "password": "x" * 20,
    }
    assert (await client.post("/v1/staff", json=chosen, headers=admin)).status_code == 405
    # 2. Promote an existing account directly: refused, it is a proposal.
    victim = await create_staff(app, "operator", username="op")
    promoted = await client.put(
        f"/v1/staff/{victim.id}/role", json={"role": "privacy_officer"}, headers=admin
    )
    assert promoted.status_code == 409
    # 3. Invite two officers and take the invitations up oneself: the accounts stay inactive.
    secrets = {}
    for name in ("po1", "po2"):
        made = await invite(client, admin, name, "privacy_officer")
        done, secrets[name] = await enrol(client, clock, made["token"])
        assert done["active"] is False
        own = await client.post(f"/v1/staff/grants/{made['grant']['id']}/confirm", headers=admin)
        assert own.status_code == 403
        assert (await login_totp(client, clock, name, secrets[name])).status_code == 401
    # 4. The command line makes no second admin without a recorded break-glass.
    with pytest.raises(AppError) as refused:
        await call(
            app,
            bootstrap.create_admin,
            new=NewAccount(username="helper", display_name="H", role=Role.ADMIN),
            password_hash=passwords.dummy_hash(app.state.ctx.settings),
        )
    assert refused.value.slug == "admin-exists"
    # 5. Nothing was granted: no privacy officer can act, none is in the history.
    assert rows(
        app, "SELECT count(*) AS n FROM staff_permission_history WHERE new_role = 'privacy_officer'"
    ) == [{"n": 0}]
    # 6. Even with a second admin's confirmation, the officers the admin made may not
    # review each other's disclosures with the admin's help: see the next test.


async def test_an_invited_accounts_role_is_not_changed_under_its_proposal(client, app, clock):
    """One admin invites an admin, then lowers the invited account's role before a second
    admin confirms: the change is refused, so what the second admin confirms is what the
    account holds, and the permission history never records a grant it does not hold."""
    first = bearer(await open_session(app, await create_staff(app, "admin", username="ann")))
    second = bearer(await open_session(app, await create_staff(app, "admin", username="bob")))
    made = await invite(client, first, "xone", "admin")
    account_id = made["account"]["id"]
    lowered = await client.put(
        f"/v1/staff/{account_id}/role", json={"role": "operator"}, headers=first
    )
    assert lowered.status_code == 422, lowered.text
    assert lowered.json()["errors"][0]["field"] == "role"
    await enrol(client, clock, made["token"])
    confirmed = await client.post(f"/v1/staff/grants/{made['grant']['id']}/confirm", headers=second)
    assert confirmed.status_code == 200, confirmed.text
    account = await client.get(f"/v1/staff/{account_id}", headers=second)
    assert account.json()["role"] == "admin"
    history = rows(
        app, "SELECT change, new_role FROM staff_permission_history WHERE staff_id = :s",
        s=account_id,
    )  # fmt: skip
    assert history == [{"change": "grant", "new_role": "admin"}]
    # And should the role change by another way all the same, the confirmation is refused.
    made = await invite(client, first, "xtwo", "admin")
    with sync_engine(app).begin() as conn:
        conn.execute(sa.text("UPDATE staff_accounts SET role = 'operator' WHERE username = 'xtwo'"))
    refused = await client.post(f"/v1/staff/grants/{made['grant']['id']}/confirm", headers=second)
    assert refused.status_code == 409, refused.text


async def test_the_approver_is_independent_of_the_requester(app):
    """The approver neither made the requester (created, granted) nor was made by them."""
    subject = await add_subscriber(app, number(1))
    maker = await create_staff(app, "privacy_officer", username="maker")
    made = await create_staff(app, "operator", username="made")
    stranger = await create_staff(app, "privacy_officer", username="stranger")
    now = app.state.ctx.clock.now()
    # The maker granted the other's role (as an admin, before becoming a privacy officer).
    async with app.state.db.transaction() as tx:
        await accounts.record_permission(
            tx, account_id=made.id, change="grant", old_role=None, new_role="operator",
            actor=f"staff:{maker.id}", at=now,
        )  # fmt: skip
    as_maker = staff(maker.id, Role.PRIVACY_OFFICER)
    as_made = staff(made.id, Role.OPERATOR)
    as_stranger = staff(stranger.id, Role.PRIVACY_OFFICER)

    asked = await call(app, workflow.request, ip=IP, staff=as_made, data=request_data([subject]))
    with pytest.raises(AppError) as refused:
        await call(
            app,
            workflow.decide,
            ip=IP,
            staff=as_maker,
            request_id=asked.id,
            note="ok",
            approve=True,
        )
    assert refused.value.slug == "disclosure-dependent-approver"
    # Vice versa: the requester made the approver.
    asked_by_maker = await call(
        app, workflow.request, ip=IP, staff=as_maker, data=request_data([subject])
    )
    as_made_officer = staff(made.id, Role.PRIVACY_OFFICER)
    with pytest.raises(AppError) as refused:
        await call(
            app, workflow.decide, ip=IP, staff=as_made_officer, request_id=asked_by_maker.id,
            note="ok", approve=True,
        )  # fmt: skip
    assert refused.value.slug == "disclosure-dependent-approver"
    # Confirming a grant counts too, and so does creating the account.
    confirmed_by = await create_staff(app, "privacy_officer", username="confirmer")
    async with app.state.db.transaction() as tx:
        await accounts.record_permission(
            tx, account_id=stranger.id, change="grant", old_role=None,
            new_role="privacy_officer", actor="staff:stf_someone", at=now,
            confirmed_by=f"staff:{confirmed_by.id}",
        )  # fmt: skip
    asked_by_stranger = await call(
        app, workflow.request, ip=IP, staff=as_stranger, data=request_data([subject])
    )
    with pytest.raises(AppError):
        await call(
            app, workflow.decide, ip=IP, staff=staff(confirmed_by.id, Role.PRIVACY_OFFICER),
            request_id=asked_by_stranger.id, note="ok", approve=True,
        )  # fmt: skip
    # An unrelated officer decides.
    decided = await call(
        app, workflow.decide, ip=IP, staff=as_stranger, request_id=asked.id, note="ok", approve=True
    )
    assert decided.status == "approved"


async def test_offboarding_an_admin_ends_their_proposals_and_lists_their_grants(client, app, clock):
    leaver_account = await create_staff(app, "admin", username="leaver")
    leaver = bearer(await open_session(app, leaver_account))
    stayer = await staff_auth(app, client, "admin", username="stayer")
    # An operator they invited, who took the invitation up: active, and to be reviewed.
    taken = await invite(client, leaver, "op1", "operator")
    await enrol(client, clock, taken["token"])
    # An invitation still open, and a pending proposal.
    open_one = await invite(client, leaver, "op2", "operator")
    target = await create_staff(app, "auditor", username="aud")
    proposal = await client.post(
        f"/v1/staff/{target.id}/grants", json={"role": "admin"}, headers=leaver
    )
    assert proposal.status_code == 201
    # An account they only took rights from: not theirs to review.
    disabled = await create_staff(app, "operator", username="op3")
    off = await client.post(f"/v1/staff/{disabled.id}/disable", headers=leaver)
    assert off.status_code == 200, off.text

    done = await client.post(f"/v1/staff/{leaver_account.id}/offboard", headers=stayer)
    assert done.status_code == 200, done.text
    answer = done.json()
    assert answer["grants_cancelled"] == [proposal.json()["id"]]
    assert answer["invitations_revoked"] == [open_one["invitation"]["id"]]
    assert sorted(a["username"] for a in answer["to_review"]) == ["op1", "op2"]
    cancelled = await client.post(
        f"/v1/staff/grants/{proposal.json()['id']}/confirm", headers=stayer
    )
    assert cancelled.status_code == 409
    late = await client.post(
        "/v1/staff/enrolment", json={"token": open_one["token"], "password": OWN_PASSWORD}
    )
    assert late.status_code == 401
    review = await client.get(f"/v1/staff/{leaver_account.id}/granted", headers=stayer)
    assert sorted(a["username"] for a in review.json()["staff"]) == ["op1", "op2"]
    assert events(app, "staff:account:offboarded")[0]["details"]["to_review"]


async def test_break_glass_is_refused_while_two_admins_can_act(app, clock):
    """An admin with the host's shell cannot make a second pair of eyes of their own
    while another admin could confirm instead; once only one can act, break-glass works."""
    await create_staff(app, "admin", username="root")
    other = await create_staff(app, "admin", username="second")
    hashed = passwords.dummy_hash(app.state.ctx.settings)

    async def glass(username: str):
        return await call(
            app,
            bootstrap.create_admin,
            new=NewAccount(username=username, display_name="G", role=Role.ADMIN),
            password_hash=hashed,
            break_glass=True,
        )

    with pytest.raises(AppError) as refused:
        await glass("glass1")
    assert refused.value.slug == "break-glass-refused"
    assert rows(app, "SELECT count(*) AS n FROM staff_accounts WHERE role = 'admin'") == [{"n": 2}]
    # The second admin locked out still counts: a lockout ends by itself, and one who
    # locked themself out (five wrong codes after their own password) made break-glass
    # theirs, past the other admin, to confirm their own proposals.
    async with app.state.db.transaction() as tx:
        await staff_repo.update_account(
            tx, other.id, locked_until=clock.now() + dt.timedelta(minutes=15)
        )
    with pytest.raises(AppError) as locked:
        await glass("glass2")
    assert locked.value.slug == "break-glass-refused"
    # The second admin gone (disabled): one can act, break-glass is allowed, and counts
    # while it lasts (a second break-glass is then refused).
    async with app.state.db.transaction() as tx:
        await staff_repo.update_account(tx, other.id, disabled_at=clock.now())
    assert (await glass("glass2")).expires_at is not None
    with pytest.raises(AppError) as again:
        await glass("glass3")
    assert again.value.slug == "break-glass-refused"
    # Once the break-glass admin has ended, one can act again: break-glass is allowed.
    clock.advance(hours=24)
    assert (await glass("glass4")).expires_at is not None


async def test_a_break_glass_admin_expires(client, app, clock):
    await create_staff(app, "admin", username="root")
    hashed = passwords.hash_password_sync(app.state.ctx.settings, OWN_PASSWORD)
    glass = await call(
        app,
        bootstrap.create_admin,
        new=NewAccount(username="glass", display_name="G", role=Role.ADMIN),
        password_hash=hashed,
        break_glass=True,
    )
    assert glass.expires_at == clock.now() + dt.timedelta(hours=24)
    session = await login(client, "glass", OWN_PASSWORD)
    assert session.status_code == 201
    headers = bearer(session.json()["token"])
    clock.advance(hours=23, minutes=59)
    headers = bearer((await login(client, "glass", OWN_PASSWORD)).json()["token"])
    assert (await client.get("/v1/staff", headers=headers)).status_code == 200
    clock.advance(minutes=1)
    assert (await client.get("/v1/staff", headers=headers)).status_code == 401
    assert (await login(client, "glass", OWN_PASSWORD)).status_code == 401
