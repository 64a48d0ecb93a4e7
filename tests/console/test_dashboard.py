"""The dashboard shows each role what is due for it, through the API's own services and
role sets: nothing a role may not read through the API."""

from __future__ import annotations

from typing import Any

import pytest

from app.staff.roles import Role
from tests.console.helpers import get, sign_in
from tests.staff.helpers import CHEAP_HASHING, create_staff, staff_auth

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
