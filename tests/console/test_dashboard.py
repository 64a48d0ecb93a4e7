"""The dashboard shows each role what is due for it, through the API's own services and
role sets: nothing a role may not read through the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.console import i18n
from app.staff.roles import Role
from tests.console.helpers import get, sign_in
from tests.staff.helpers import CHEAP_HASHING, create_staff, staff_auth

MESSAGES = Path(i18n.__file__).parent / "messages"
SECTIONS = ("due", "disclosures", "blocks", "grants", "subject-requests")
EXPECTED = {
    Role.ADMIN: {"due", "blocks", "grants"},
    Role.PRIVACY_OFFICER: {"disclosures", "subject-requests"},
    Role.AUDITOR: {"disclosures", "blocks", "grants", "subject-requests"},
    Role.OPERATOR: {"disclosures", "blocks", "subject-requests"},
}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {**CHEAP_HASHING}


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_sees_only_its_sections(client, app, role):
    await create_staff(app, role, username="someone")
    assert (await sign_in(client, "someone")).status_code == 303
    page = await get(client, "/console/")
    assert page.status_code == 200
    shown = {name for name in SECTIONS if f'id="{name}"' in page.text}
    assert shown == EXPECTED[role]


async def test_the_admin_sees_credentials_due(client, app, clock):
    await create_staff(app, "admin", username="root")
    await create_staff(app, "operator", username="taro")
    clock.advance(days=85)  # passwords (90 days) come due within their notice
    await sign_in(client, "root")
    page = await get(client, "/console/")
    due = page.text.split('id="due"')[1].split("</section>")[0]
    assert "taro" in due and "password" in due


async def test_open_subject_requests_are_listed_nearest_due_first_and_flagged_when_due(
    client, app, clock
):
    ids = []
    for n, kind in enumerate(("erase", "access")):
        operator = await staff_auth(app, client, Role.OPERATOR, username=f"operator{n}")
        body = {"kind": kind, "channel": "letter", "reason": "Letter received at the office"}
        created = await client.post("/v1/subject-requests", json=body, headers=operator)
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
        clock.advance(days=5)
    # Ten days on: the first is due now, the second in five days (not yet soon).
    await create_staff(app, Role.PRIVACY_OFFICER, username="hanako")
    await sign_in(client, "hanako")
    section = (await get(client, "/console/")).text.split('id="subject-requests"')[1]
    section = section.split("</section>")[0]
    assert section.index(ids[0]) < section.index(ids[1])
    first, second = (section.split(request_id)[0].rsplit("<tr", 1)[1] for request_id in ids)
    assert 'class="due"' in first and 'class="due"' not in second


# Every kind and state app.credentials.due and app.staff.credentials_due make.
DUE = {
    "password": ("due", "overdue"),
    "api_key": ("due", "overdue", "expired"),
    "totp_secret": ("old_key", "key_missing"),
    "recovery_codes": ("key_missing",),
}


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_every_credential_due_is_said_in_words(lang):
    """The dashboard showed the report's codes (api_key, overdue) and its command-line
    advice in English, on the Japanese page too."""
    words = json.loads((MESSAGES / f"{lang}.json").read_text())
    for kind, states in DUE.items():
        assert f"due_kind.{kind}" in words
        for state in states:
            assert f"due_state.{state}" in words
            action = "due_action.api_key" if kind == "api_key" else f"due_action.{kind}.{state}"
            assert action in words, action


async def test_the_admin_reads_credentials_due_in_japanese(client, app, clock):
    await create_staff(app, "operator", username="taro")
    clock.advance(days=95)  # past the 90 days: overdue
    await create_staff(app, "admin", username="root")
    await sign_in(client, "root")
    client.cookies.set(i18n.LANG_COOKIE, "ja")
    due = (await get(client, "/console/")).text.split('id="due"')[1].split("</section>")[0]
    assert "パスワード" in due and "期限切れ" in due and "本人がパスワードを変更します" in due
    assert "overdue" not in due.replace('class="state-overdue"', "")
    assert "PUT /v1/staff/me/password" not in due
