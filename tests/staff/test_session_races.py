"""A staff member's request in flight while an admin takes their rights away.

PostgreSQL only: there two units run at once. A request read its session, then an
offboarding, a disable or a demotion committed, and the request went on with the rights
it had read: an offboarded admin's API keys and invitations were made after the
offboarding had rotated and revoked what it found, and outlived it. Now a request takes
its session's row before it reads its rights, and whatever takes rights away takes the
account's sessions first: one waits for the other. Each test holds, from another
connection, the rows a rival unit would hold, and lets go once the request waits.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from app.staff.roles import Role
from tests.conftest import sync_engine
from tests.fixtures.staff import open_session
from tests.staff.helpers import (
    bearer,
    create_staff,
    rival,
    rows,
    staff_auth,
    take_without_waiting,
)

KEY = {"name": "made-in-flight", "scopes": ["verifications:write"]}


async def _admin(app) -> tuple[str, dict[str, str]]:
    account = await create_staff(app, Role.ADMIN, username="leaving-admin")
    return account.id, bearer(await open_session(app, account))


async def test_a_request_waiting_on_an_offboarding_is_refused_once_it_commits(client, app):
    leaver, headers = await _admin(app)
    # As an offboarding does first: every session of the account ended, not yet committed.
    with rival(
        app,
        "UPDATE staff_sessions SET revoked_at = now() WHERE staff_id = :id",
        params={"id": leaver},
    ):
        making = asyncio.create_task(client.post("/v1/api-keys", json=KEY, headers=headers))
        await asyncio.sleep(0.3)
        assert not making.done(), "the request waits for the offboarding"
    made = await making
    assert made.status_code == 401
    assert rows(app, "SELECT id FROM api_keys WHERE created_by = :by", by=f"staff:{leaver}") == []


async def test_a_request_waiting_on_a_demotion_acts_with_the_new_role(client, app):
    demoted, headers = await _admin(app)
    # As a role change does: the account's sessions held, then the role changed.
    with rival(
        app,
        "SELECT id FROM staff_sessions WHERE staff_id = :id FOR UPDATE",
        "UPDATE staff_accounts SET role = 'operator' WHERE id = :id",
        params={"id": demoted},
    ):
        making = asyncio.create_task(client.post("/v1/api-keys", json=KEY, headers=headers))
        await asyncio.sleep(0.3)
        assert not making.done()
    assert (await making).status_code == 403


@pytest.mark.parametrize(
    ("method", "action", "body"),
    [
        ("PUT", "role", {"role": "auditor"}),  # a demotion
        ("POST", "offboard", {}),  # what the request makes is there to be rotated
        ("POST", "disable", None),
        ("DELETE", "sessions", None),
    ],
)
async def test_taking_rights_away_waits_for_the_requests_in_flight(
    client, app, method, action, body
):
    account, _headers = await _admin(app)
    admin = await staff_auth(app, client, Role.ADMIN, username="other-admin")
    # As a request of the account in flight holds its session's row.
    held = "SELECT id FROM staff_sessions WHERE staff_id = :id FOR UPDATE"
    with rival(app, held, params={"id": account}):
        taking = asyncio.create_task(
            client.request(method, f"/v1/staff/{account}/{action}", json=body, headers=admin)
        )
        await asyncio.sleep(0.3)
        assert not taking.done(), "it waits for the request to end"
    assert (await taking).status_code == 200


async def test_taking_rights_away_and_the_accounts_own_request_never_deadlock(client, app):
    """One order for both: a request of the account takes its session, then its account
    (a password change); an admin's disable took the account, then its sessions, and the
    two deadlocked (one answered 503). Now the disable takes the sessions first."""
    account, _headers = await _admin(app)
    admin = await staff_auth(app, client, Role.ADMIN, username="other-admin")
    engine = sync_engine(app)
    if engine.dialect.name != "postgresql":
        pytest.skip("units run one at a time on SQLite")
    with engine.connect() as conn:
        # As the account's own request: its session first ...
        conn.execute(
            sa.text("UPDATE staff_sessions SET last_seen_at = now() WHERE staff_id = :id"),
            {"id": account},
        )
        disabling = asyncio.create_task(client.post(f"/v1/staff/{account}/disable", headers=admin))
        await asyncio.sleep(0.3)
        # ... then its account, which the disable must not hold meanwhile.
        take_without_waiting(
            conn, "SELECT id FROM staff_accounts WHERE id = :id FOR UPDATE", {"id": account}
        )
        assert not disabling.done()
        conn.commit()
    assert (await disabling).status_code == 200


async def test_a_confirmed_grant_waits_for_the_requests_in_flight(client, app):
    """A role granted under four eyes changes the account's rights too."""
    account = await create_staff(app, Role.OPERATOR, username="promoted")
    await open_session(app, account)
    proposer = await staff_auth(app, client, Role.ADMIN, username="proposer")
    confirmer = await staff_auth(app, client, Role.ADMIN, username="confirmer")
    proposed = await client.post(
        f"/v1/staff/{account.id}/grants", json={"role": "privacy_officer"}, headers=proposer
    )
    assert proposed.status_code == 201, proposed.text
    held = "SELECT id FROM staff_sessions WHERE staff_id = :id FOR UPDATE"
    with rival(app, held, params={"id": account.id}):
        confirming = asyncio.create_task(
            client.post(f"/v1/staff/grants/{proposed.json()['id']}/confirm", headers=confirmer)
        )
        await asyncio.sleep(0.3)
        assert not confirming.done(), "it waits for the request to end"
    assert (await confirming).status_code == 200


async def test_a_role_change_waits_for_the_accounts_own_request_and_never_deadlocks(client, app):
    """The account's own request holds its session, then changes its account (a password
    change, say); a role change meanwhile takes the sessions first, then the account, so
    the two wait for each other. It read the account under a lock first, and deadlocked."""
    engine = sync_engine(app)
    if engine.dialect.name != "postgresql":
        pytest.skip("units run one at a time on SQLite")
    target = await create_staff(app, Role.AUDITOR, username="target")
    await open_session(app, target)
    admin = await staff_auth(app, client, "admin", username="the-admin")
    with engine.connect() as conn:
        conn.execute(  # the account's request in flight: its session row taken
            sa.text("UPDATE staff_sessions SET last_seen_at = now() WHERE staff_id = :id"),
            {"id": target.id},
        )
        changing = asyncio.create_task(
            client.put(f"/v1/staff/{target.id}/role", json={"role": "operator"}, headers=admin)
        )
        await asyncio.sleep(0.3)
        assert not changing.done(), "the role change waits for the request"
        conn.execute(  # ...which then changes its own account, and commits
            sa.text("UPDATE staff_accounts SET display_name = 'Own' WHERE id = :id"),
            {"id": target.id},
        )
        conn.commit()
    changed = await changing
    assert changed.status_code == 200, changed.text
    assert rows(app, "SELECT role FROM staff_accounts WHERE username = 'target'") == [
        {"role": "operator"}
    ]


async def test_confirming_a_grant_and_disabling_its_account_never_deadlock(client, app):
    """A disable holds the account's sessions, then the account, then cancels its
    proposals; a confirmation held the proposal first, then waited for the account, and
    the two deadlocked (one answered 503). Now a confirmation takes the account first."""
    engine = sync_engine(app)
    if engine.dialect.name != "postgresql":
        pytest.skip("units run one at a time on SQLite")
    account = await create_staff(app, Role.OPERATOR, username="promoted")
    proposer = await staff_auth(app, client, Role.ADMIN, username="proposer")
    confirmer = await staff_auth(app, client, Role.ADMIN, username="confirmer")
    proposed = await client.post(
        f"/v1/staff/{account.id}/grants", json={"role": "privacy_officer"}, headers=proposer
    )
    assert proposed.status_code == 201, proposed.text
    grant = proposed.json()["id"]
    with engine.connect() as conn:
        # As a disable does: the account's sessions, then the account ...
        conn.execute(
            sa.text("SELECT id FROM staff_sessions WHERE staff_id = :id FOR UPDATE"),
            {"id": account.id},
        )
        conn.execute(
            sa.text("SELECT id FROM staff_accounts WHERE id = :id FOR UPDATE"), {"id": account.id}
        )
        confirming = asyncio.create_task(
            client.post(f"/v1/staff/grants/{grant}/confirm", headers=confirmer)
        )
        await asyncio.sleep(0.3)
        assert not confirming.done(), "the confirmation waits for the disable"
        # ... then its proposals, which the confirmation must not hold meanwhile.
        take_without_waiting(
            conn, "UPDATE staff_role_grants SET status = 'cancelled' WHERE id = :id", {"id": grant}
        )
        conn.commit()
    confirmed = await confirming
    assert confirmed.status_code == 409, confirmed.text
    assert confirmed.json()["type"].endswith("grant-not-pending")


async def test_rejecting_an_invitations_grant_and_disabling_its_account_never_deadlock(client, app):
    """Rejecting an invitation's proposal disables its never-active account: it too takes
    the account before the proposal."""
    engine = sync_engine(app)
    if engine.dialect.name != "postgresql":
        pytest.skip("units run one at a time on SQLite")
    admin = await staff_auth(app, client, Role.ADMIN, username="inviter")
    other = await staff_auth(app, client, Role.ADMIN, username="rejecter")
    invited = await client.post(
        "/v1/staff/invitations",
        json={"username": "newcomer", "display_name": "Newcomer", "role": "admin"},
        headers=admin,
    )
    assert invited.status_code == 201, invited.text
    [grant] = rows(app, "SELECT id, staff_id FROM staff_role_grants WHERE status = 'pending'")
    with engine.connect() as conn:
        conn.execute(
            sa.text("SELECT id FROM staff_accounts WHERE id = :id FOR UPDATE"),
            {"id": grant["staff_id"]},
        )
        rejecting = asyncio.create_task(
            client.post(f"/v1/staff/grants/{grant['id']}/reject", json={}, headers=other)
        )
        await asyncio.sleep(0.3)
        assert not rejecting.done(), "the rejection waits for the account"
        take_without_waiting(
            conn,
            "UPDATE staff_role_grants SET status = 'cancelled' WHERE id = :id",
            {"id": grant["id"]},
        )
        conn.commit()
    rejected = await rejecting
    assert rejected.status_code == 409, rejected.text
