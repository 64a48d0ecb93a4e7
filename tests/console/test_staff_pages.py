"""Staff, API keys and pumping blocks in the console: invitations with their token shown
once, privileged roles under four eyes, offboarding showing each door it closed, keys
created, rotated and revoked, a block lifted with a reason."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any

import pytest

from app.console import i18n
from app.core.sql import lock_key
from tests.console.helpers import csrf_of, get, post, signed_in
from tests.fixtures.staff import create_staff
from tests.staff.helpers import CHEAP_HASHING, enrol, events, execute, rival, rows


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {**CHEAP_HASHING}


def grant_ids(page: str) -> list[str]:
    return re.findall(r"/console/staff/grants/(grt_[\w\-]+)/confirm", page)


async def test_a_privileged_invitation_waits_for_a_second_admin(client, app, clock):
    root = await signed_in(app, "admin", "root")
    other = await signed_in(app, "admin", "root2")
    invited = await post(
        root, "/console/staff/invitations",
        {"username": "hanako", "display_name": "Hanako Yamada", "role": "privacy_officer"},
        csrf_from="/console/staff",
    )  # fmt: skip
    assert invited.status_code == 200, invited.text
    token = re.search(r'id="invitation-token">([^<]+)<', invited.text).group(1)
    assert token.startswith("smsreg_inv_")
    assert token not in (await get(root, "/console/staff")).text  # shown once
    page = await get(root, "/console/staff")
    ((grant,),) = [tuple(r.values()) for r in rows(app, "SELECT id FROM staff_role_grants")]
    # The proposer is offered no Confirm (it could only be refused), and may withdraw.
    assert grant_ids(page.text) == []
    assert f"/console/staff/grants/{grant}/reject" in page.text and "Withdraw</button>" in page.text
    own = await post(root, f"/console/staff/grants/{grant}/confirm", {"csrf": csrf_of(page)})
    assert own.status_code == 403  # not the proposer
    # Until the person has enrolled, the second admin has nothing to confirm: the page
    # says so and offers no button, and a forged post is refused.
    page = await get(other, "/console/staff")
    assert grant_ids(page.text) == [] and "not taken up yet" in page.text
    url = f"/console/staff/grants/{grant}/confirm"
    early = await post(other, url, {"csrf": csrf_of(page)})
    assert early.status_code == 409
    await enrol(client, clock, token)
    page = await get(other, "/console/staff")
    assert grant_ids(page.text) == [grant]
    assert "enrolled from" in page.text.split('id="grants"')[1].split("</section>")[0]
    confirmed = await post(other, url, {"csrf": csrf_of(page)})
    assert confirmed.status_code == 303
    assert rows(app, "SELECT status FROM staff_role_grants") == [{"status": "confirmed"}]
    # The page it leads to says what was done (it said nothing: the admin had to find
    # the row), as the grant stands, never as the address claims.
    after = await get(other, confirmed.headers["location"])
    done = re.search(r'<p class="ok" role="status" id="done">([^<]*)</p>', after.text)
    assert done and done.group(1).startswith("Confirmed: hanako is privacy officer now (by root2,")
    assert 'id="done"' not in (await get(other, "/console/staff?grant=grt_elsewhere")).text
    bad = await post(
        root, "/console/staff/invitations",
        {"username": "x", "display_name": "X", "role": "operator"}, csrf_from="/console/staff",
    )  # fmt: skip
    assert bad.status_code == 422 and "username" in bad.text


async def test_a_revoked_invitation_is_said_so_on_the_page_after(client, app):
    root = await signed_in(app, "admin", "root")
    await post(
        root, "/console/staff/invitations",
        {"username": "jiro", "display_name": "Jiro Sato", "role": "operator"},
        csrf_from="/console/staff",
    )  # fmt: skip
    ((invitation,),) = [tuple(r.values()) for r in rows(app, "SELECT id FROM staff_invitations")]
    open_page = await get(root, f"/console/staff?invitation={invitation}")
    assert 'id="done"' not in open_page.text  # not revoked: nothing claimed
    revoked = await post(
        root, f"/console/staff/invitations/{invitation}/revoke", {"csrf": csrf_of(open_page)}
    )
    assert revoked.status_code == 303
    after = await get(root, revoked.headers["location"])
    assert "Revoked: the invitation for jiro (by root," in after.text


async def test_offboarding_shows_each_door_it_closed(client, app):
    root = await signed_in(app, "admin", "root")
    leaver = await signed_in(app, "operator", "taro")
    (taro,) = rows(app, "SELECT id FROM staff_accounts WHERE username = 'taro'")
    url = f"/console/staff/{taro['id']}/offboard"
    # Nothing that cannot be undone happens on one click: the box must be ticked.
    slip = await post(root, url, {}, csrf_from="/console/staff")
    assert slip.status_code == 422 and "confirm" in slip.text
    assert (await get(leaver, "/console/")).status_code == 200, "the slip changed nothing"
    done = await post(root, url, {"confirm": "yes"}, csrf_from="/console/staff")
    assert done.status_code == 200, done.text
    doors = done.text.split('id="doors"')[1].split("</ul>")[0]
    assert doors.count("<li>") == 7
    assert "Recovery codes removed" in doors  # what went, not what is left
    assert (await get(leaver, "/console/")).headers["location"] == "/console/login?ended=1"
    auditor = await signed_in(app, "auditor", "kenji")
    page = await get(auditor, "/console/staff")
    assert page.status_code == 200 and 'id="invite"' not in page.text
    assert (
        await post(auditor, f"/console/staff/{taro['id']}/disable", {"csrf": csrf_of(page)})
    ).status_code == 403


async def test_a_role_change_waits_for_a_role_to_be_chosen(client, app):
    """Each account's role list stood at its first role, ready to send: one click on
    Change role demoted another admin to operator."""
    root = await signed_in(app, "admin", "root")
    await signed_in(app, "admin", "other")
    page = await get(root, "/console/staff")
    row = re.search(r'<tr id="account-other">.*?</tr>', page.text, re.S).group(0)
    select = re.search(r'<select name="role"[^>]*>(.*?)</select>', row, re.S)
    assert "required" in select.group(0)
    assert re.match(r'<option value="" selected disabled>', select.group(1)), select.group(1)
    (staff_id,) = re.findall(r"/console/staff/(stf_[\w\-]+)/role", row)
    unchosen = await post(
        root, f"/console/staff/{staff_id}/role", {"role": "", "csrf": csrf_of(page)}
    )
    assert unchosen.status_code == 422 and "role" in unchosen.text
    assert rows(app, "SELECT role FROM staff_accounts WHERE id = :i", i=staff_id) == [
        {"role": "admin"}
    ]
    root.cookies.set("smsreg_lang", "ja")
    japanese = (await get(root, "/console/staff")).text
    assert "(管理者)" in japanese and "<td>管理者</td>" in japanese
    assert ">オペレーター</option>" in japanese


async def key_form(root, name: str, scopes: tuple[str, ...] = ("verifications:write",)):
    """The new-key form as the page shows it now (its token, the keys made before), filled in."""
    page = (await get(root, "/console/api-keys")).text
    made = re.search(r'name="made" value="(\d+)"', page).group(1)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    return {"name": name, "scopes": list(scopes), "made": made, "csrf": csrf}


async def made_key(root, name: str) -> tuple[str, str, Any]:
    """A key made on the console's page: its token (shown once), its id, and the page."""
    made = await post(root, "/console/api-keys", await key_form(root, name))
    assert made.status_code == 200, made.text
    token = re.search(r'id="api-key-token">([^<]+)<', made.text).group(1)
    page = await get(root, "/console/api-keys")
    (key_id,) = re.findall(r"/console/api-keys/(key_[\w\-]+)/rotate", page.text)
    return token, key_id, page


async def test_api_keys_are_created_rotated_and_revoked(client, app):
    root = await signed_in(app, "admin", "root")
    token, key_id, page = await made_key(root, "coupon-frontend")
    assert token.startswith("smsreg_sk_")
    assert token not in page.text
    rotated = await post(
        root, f"/console/api-keys/{key_id}/rotate", {"grace_hours": "2", "csrf": csrf_of(page)}
    )
    assert rotated.status_code == 200 and "smsreg_sk_" in rotated.text
    # Reloaded, the rotation is refused, and says the successor's token was shown once.
    reloaded = await post(
        root, f"/console/api-keys/{key_id}/rotate", {"grace_hours": "2", "csrf": csrf_of(page)}
    )
    assert reloaded.status_code == 409 and "successor&#39;s token was shown once" in reloaded.text
    page = await get(root, "/console/api-keys")
    (successor,) = re.findall(r"/console/api-keys/(key_[\w\-]+)/rotate", page.text)
    revoke = f"/console/api-keys/{successor}/revoke"
    assert (await post(root, revoke, {"csrf": csrf_of(page)})).status_code == 422
    revoked = await post(root, revoke, {"csrf": csrf_of(page), "confirm": "yes"})
    assert revoked.status_code == 303
    no_scope = await post(root, "/console/api-keys", await key_form(root, "x", scopes=()))
    assert no_scope.status_code == 422 and "scopes" in no_scope.text
    # The page showing the token once has no language switch: it led to the dashboard,
    # and the token was lost. A page with an address keeps its switch, back to it.
    shown = await post(root, "/console/api-keys", await key_form(root, "second"))
    assert "smsreg_sk_" in shown.text and "/console/language/" not in shown.text
    assert '/console/language/ja?back=/console/api-keys"' in page.text


async def test_the_new_key_form_sent_again_makes_no_second_key(client, app, clock):
    """Reloading the page that showed a new key's token sent the form again: a second live
    key, while the first, already copied into the frontend, stayed live unnoticed."""
    root = await signed_in(app, "admin", "root")
    form = await key_form(root, "coupon-frontend")
    second_tab = await key_form(root, "coupon-frontend")
    made = await post(root, "/console/api-keys", form)
    assert made.status_code == 200 and "smsreg_sk_" in made.text
    (key_id,) = rows(app, "SELECT id FROM api_keys WHERE name = 'coupon-frontend'")[0].values()
    for again in (form, second_tab):  # a reload (or a double click), and a second tab
        refused = await post(root, "/console/api-keys", again)
        assert refused.status_code == 409, refused.text
        assert "smsreg_sk_" not in refused.text
        assert f"API key {key_id} (coupon-frontend) was made at " in refused.text
        assert f"revoke {key_id}" in refused.text
    assert len(rows(app, "SELECT id FROM api_keys WHERE name = 'coupon-frontend'")) == 1
    # A key rotated since the page was shown refuses its form too (the admin was shown a
    # token since); a fresh page takes the form again.
    stale = await key_form(root, "backend")
    page = await get(root, "/console/api-keys")
    clock.advance(seconds=1)
    rotated = await post(root, f"/console/api-keys/{key_id}/rotate", {"csrf": csrf_of(page)})
    assert rotated.status_code == 200, rotated.text
    refused = await post(root, "/console/api-keys", stale)
    assert refused.status_code == 409
    # The successor is the client's working key: the refusal must not say to revoke it.
    assert f"was made by rotating {key_id}" in refused.text and "revoke" not in refused.text
    fresh = await post(root, "/console/api-keys", await key_form(root, "backend"))
    assert fresh.status_code == 200 and "smsreg_sk_" in fresh.text
    # Another admin's keys are no reason to refuse this admin's form.
    other = await signed_in(app, "admin", "root2")
    mine = await key_form(root, "third")
    assert (await post(other, "/console/api-keys", await key_form(other, "x"))).status_code == 200
    assert (await post(root, "/console/api-keys", mine)).status_code == 200


async def test_a_key_form_waits_for_the_same_admins_form_in_another_session(client, app):
    """The same admin in two browsers (two sessions, whose rows do not make one request
    wait for the other) sending one form shown before either key was made: the second
    read the count of keys before the first committed its key, and made another. A
    rival holds the lock a form takes and makes the admin's key, as the other browser's
    form would; this form waits for it and is then refused."""
    root = await signed_in(app, "admin", "root")
    form = await key_form(root, "made-twice")
    (actor,) = rows(app, "SELECT id FROM staff_accounts WHERE username = 'root'")[0].values()
    with rival(
        app,
        "SELECT pg_advisory_xact_lock(:lock)",
        "INSERT INTO api_keys (id, name, prefix, token_hash, token_key_id, scopes, created_by,"
        " created_at, expires_at) VALUES ('key_rival', 'made-twice', 'smsreg_sk_',"
        " 'rival-hash', 'k1', '[\"verifications:write\"]', :actor, now(),"
        " now() + interval '1 day')",
        params={"lock": lock_key(f"console-form:api-key:staff:{actor}"), "actor": f"staff:{actor}"},
    ):
        sending = asyncio.create_task(post(root, "/console/api-keys", form))
        await asyncio.sleep(0.3)
        assert not sending.done(), "the form waits for the other session's"
    sent = await sending
    assert sent.status_code == 409 and "API key key_rival (made-twice)" in sent.text
    assert len(rows(app, "SELECT id FROM api_keys WHERE name = 'made-twice'")) == 1


@pytest.mark.parametrize(("grace_hours", "old_key_status"), [("0", 401), ("", 404)])
async def test_a_rotation_with_no_grace_ends_the_old_key_at_once(
    client, app, grace_hours, old_key_status
):
    """A grace of 0 hours in the console's form was read as none given: the old key (a
    leaked one, say) kept working for the default 24 hours. Left empty, it is the default."""
    root = await signed_in(app, "admin", "root")
    token, key_id, page = await made_key(root, "leaked")
    rotated = await post(
        root, f"/console/api-keys/{key_id}/rotate",
        {"grace_hours": grace_hours, "csrf": csrf_of(page)},
    )  # fmt: skip
    assert rotated.status_code == 200, rotated.text
    old = await client.get(
        "/v1/verifications/ver_unknown", headers={"Authorization": f"Bearer {token}"}
    )
    assert old.status_code == old_key_status, old.text
    # With no grace the page said the old key "keeps working until its grace period ends".
    said = re.search(r'<p id="old-key">([^<]+)</p>', rotated.text).group(1)
    if grace_hours == "0":
        assert said == f"The old key {key_id} stopped working now (no grace period)."
    else:
        assert said.startswith(f"The old key {key_id} keeps working until 20")
        assert said.endswith(" UTC, when its grace period ends.")


async def test_a_rotated_key_in_its_grace_period_can_be_revoked(client, app):
    """A key rotated with the default grace (a leak suspected) kept working 24 hours with
    no Revoke on the page, though the API revokes it."""
    root = await signed_in(app, "admin", "root")
    token, old_id, page = await made_key(root, "leaky")
    rotated = await post(root, f"/console/api-keys/{old_id}/rotate", {"csrf": csrf_of(page)})
    assert rotated.status_code == 200, rotated.text
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/verifications/ver_unknown", headers=bearer)).status_code == 404
    page = await get(root, "/console/api-keys")
    row = page.text.split(f"<tr><td><code>{old_id}</code>")[1].split("</tr>")[0]
    assert "Rotated, in its grace period" in row
    assert f"/console/api-keys/{old_id}/revoke" in row and "/rotate" not in row
    revoked = await post(
        root, f"/console/api-keys/{old_id}/revoke", {"confirm": "yes", "csrf": csrf_of(page)}
    )
    assert revoked.status_code == 303
    assert (await client.get("/v1/verifications/ver_unknown", headers=bearer)).status_code == 401
    row = (await get(root, "/console/api-keys")).text.split(f"<code>{old_id}</code>")[1]
    assert row.split("</tr>")[0].count("<form") == 0  # revoked: nothing left to do


async def test_an_api_key_state_is_said_in_words_in_both_languages(client, app):
    """The state column showed the raw code ("active", "expired"), in Japanese too."""
    root = await signed_in(app, "admin", "root")
    await post(root, "/console/api-keys", await key_form(root, "frontend"))
    page = (await get(root, "/console/api-keys")).text
    assert "<td>Active</td>" in page and "<td>active</td>" not in page
    root.cookies.set("smsreg_lang", "ja")
    page = (await get(root, "/console/api-keys")).text
    assert "<td>有効</td>" in page and "<td>active</td>" not in page
    for lang in ("en", "ja"):  # every state a key or a due key can be in
        words = i18n.CATALOGUE[lang]
        for state in ("active", "rotated", "expired", "revoked", "due", "overdue"):
            assert words.get(f"key_state.{state}"), (lang, state)


async def test_an_admin_lifts_a_pumping_block_with_a_reason(client, app, clock):
    now = clock.now()
    execute(
        app,
        "INSERT INTO pumping_blocks (id, prefix_index, prefix, region, blocked_at, ends_at, "
        "sends, approvals) VALUES ('blk_1', 'idx', '+819012', 'JP', :now, :end, 40, 0)",
        now=now, end=now.replace(hour=now.hour + 1),
    )  # fmt: skip
    operator = await signed_in(app, "operator", "taro")
    page = await get(operator, "/console/pumping")
    assert "+819012" in page.text and "/lift" not in page.text
    root = await signed_in(app, "admin", "root")
    page = await get(root, "/console/pumping")
    short = await post(root, "/console/pumping/blk_1/lift", {"reason": "x", "csrf": csrf_of(page)})
    assert short.status_code == 422 and "reason" in short.text
    lifted = await post(
        root, "/console/pumping/blk_1/lift",
        {"reason": "A campaign by our own client", "csrf": csrf_of(page)},
    )  # fmt: skip
    assert lifted.status_code == 303
    assert rows(app, "SELECT lift_reason FROM pumping_blocks") == [
        {"lift_reason": "A campaign by our own client"}
    ]


async def test_one_role_form_gives_at_once_or_proposes_and_an_admin_unlocks(client, app):
    root = await signed_in(app, "admin", "root")
    await signed_in(app, "operator", "taro")
    (taro,) = rows(app, "SELECT id FROM staff_accounts WHERE username = 'taro'")
    path = f"/console/staff/{taro['id']}"
    given = await post(root, path + "/role", {"role": "auditor"}, csrf_from="/console/staff")
    assert given.status_code == 303
    assert rows(app, "SELECT role FROM staff_accounts WHERE username = 'taro'") == [
        {"role": "auditor"}
    ]
    proposed = await post(
        root, path + "/role", {"role": "privacy_officer"}, csrf_from="/console/staff"
    )
    assert proposed.status_code == 303
    assert rows(app, "SELECT role, status FROM staff_role_grants") == [
        {"role": "privacy_officer", "status": "pending"}
    ]
    assert rows(app, "SELECT role FROM staff_accounts WHERE username = 'taro'") == [
        {"role": "auditor"}
    ]
    unlocked = await post(
        root, path + "/unlock", {"reason": "Locked out after a phone change"},
        csrf_from="/console/staff",
    )  # fmt: skip
    assert unlocked.status_code == 303
    assert len(events(app, "staff:account:unlocked")) == 1


async def test_a_break_glass_admin_is_marked_with_its_end(client, app, clock):
    root = await signed_in(app, "admin", "root")
    await signed_in(app, "admin", "rescue")
    ends = clock.now().replace(microsecond=0) + dt.timedelta(hours=4)
    execute(app, "UPDATE staff_accounts SET expires_at = :e WHERE username = 'rescue'", e=ends)
    page = await get(root, "/console/staff")
    row = page.text.split('id="account-rescue"')[1].split("</tr>")[0]
    assert f"break-glass, ends {ends:%Y-%m-%d %H:%M} UTC" in row
    assert "break-glass" not in page.text.split('id="account-root"')[1].split("</tr>")[0]
    # Disabled, or past its end, it is still marked: an auditor reviews break-glass admins
    # afterwards, just when the mark vanished.
    (rescue,) = rows(app, "SELECT id FROM staff_accounts WHERE username = 'rescue'")
    disabled = await post(
        root, f"/console/staff/{rescue['id']}/disable", {"confirm": "yes"},
        csrf_from="/console/staff",
    )  # fmt: skip
    assert disabled.status_code == 303
    row = account_row((await get(root, "/console/staff")).text, "rescue")
    assert f"break-glass, was to end {ends:%Y-%m-%d %H:%M} UTC" in row
    ended = ends - dt.timedelta(hours=5)  # its end already past
    execute(app, "UPDATE staff_accounts SET expires_at = :e WHERE username = 'rescue'", e=ended)
    row = account_row((await get(root, "/console/staff")).text, "rescue")
    assert f"break-glass, ended {ended:%Y-%m-%d %H:%M} UTC" in row


def account_row(page: str, username: str) -> str:
    """An account's row on the staff page."""
    return page.split(f'id="account-{username}"')[1].split("</tr>")[0]


def actions_of(row: str) -> list[str]:
    """The forms an account's row offers, by the last part of their address."""
    return re.findall(r'action="/console/staff/stf_[\w\-]+/(\w+)"', row)


async def test_a_disabled_account_is_offered_offboard_alone(client, app):
    """A disabled account's row offered nothing, though security.md says an account that
    was only disabled can be offboarded later to rotate its keys."""
    root = await signed_in(app, "admin", "root")
    await signed_in(app, "operator", "taro")
    page = await get(root, "/console/staff")
    assert actions_of(account_row(page.text, "taro")) == ["role", "unlock", "disable", "offboard"]
    assert actions_of(account_row(page.text, "root")) == []  # never one's own
    (taro,) = rows(app, "SELECT id FROM staff_accounts WHERE username = 'taro'")
    disabled = await post(
        root, f"/console/staff/{taro['id']}/disable", {"confirm": "yes", "csrf": csrf_of(page)}
    )
    assert disabled.status_code == 303
    page = await get(root, "/console/staff")
    assert actions_of(account_row(page.text, "taro")) == ["offboard"]
    done = await post(
        root, f"/console/staff/{taro['id']}/offboard", {"confirm": "yes", "csrf": csrf_of(page)}
    )
    assert done.status_code == 200 and 'id="doors"' in done.text


async def test_an_invited_account_is_not_offered_a_role_change(client, app):
    """An invited account's row offered Change role, which could only answer 422 (revoke
    the invitation and invite anew), and Unlock, for an account nobody signs in to yet."""
    root = await signed_in(app, "admin", "root")
    invited = await post(
        root, "/console/staff/invitations",
        {"username": "inv9", "display_name": "Invited Nine", "role": "operator"},
        csrf_from="/console/staff",
    )  # fmt: skip
    assert invited.status_code == 200, invited.text
    row = account_row((await get(root, "/console/staff")).text, "inv9")
    assert "Not yet active" in row
    assert actions_of(row) == ["disable", "offboard"]
    assert "revoke the invitation and invite anew" in row


async def test_a_rejection_in_the_console_keeps_its_reason(client, app):
    """The console's Reject had no reason field, though the API takes one."""
    root = await signed_in(app, "admin", "root")
    other = await signed_in(app, "admin", "root2")
    await create_staff(app, "operator", username="taro")
    (target,) = rows(app, "SELECT id FROM staff_accounts WHERE username = 'taro'")
    proposed = await post(
        root, f"/console/staff/{target['id']}/role", {"role": "privacy_officer"},
        csrf_from="/console/staff",
    )  # fmt: skip
    assert proposed.status_code in (200, 303), proposed.text
    ((grant,),) = [tuple(r.values()) for r in rows(app, "SELECT id FROM staff_role_grants")]
    page = await get(other, "/console/staff")
    assert grant_ids(page.text) == [grant] and 'name="reason"' in page.text
    rejected = await post(
        other, f"/console/staff/grants/{grant}/reject",
        {"reason": "Not agreed with the privacy team", "csrf": csrf_of(page)},
    )  # fmt: skip
    assert rejected.status_code == 303
    (closed,) = rows(app, "SELECT status, reason FROM staff_role_grants")
    assert closed == {"status": "rejected", "reason": "Not agreed with the privacy team"}
