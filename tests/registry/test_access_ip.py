"""The access log's source IP follows the verification limits' rule: X-Forwarded-For is
believed only from a trusted proxy."""

from __future__ import annotations

from typing import Any

import pytest

from tests.staff.helpers import CHEAP_HASHING, create_staff, login, rows, staff_auth, verified


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # The test client's peer (203.0.113.7) is a trusted proxy here.
    return {**CHEAP_HASHING, "trusted_proxies": ["203.0.113.0/24"]}


async def test_source_ip_from_a_trusted_proxy(client, app, carrier, auth):
    subscriber = await verified(client, app, carrier, auth, "+819012345678")
    headers = await staff_auth(app, client, "operator")
    forwarded = {**headers, "X-Forwarded-For": "192.0.2.50, 198.51.100.9"}
    assert (await client.get(f"/v1/subscribers/{subscriber}", headers=forwarded)).status_code == 200
    (entry,) = rows(app, "SELECT source_ip FROM access_log")
    assert entry["source_ip"] == "198.51.100.9", "the hop right of the trusted proxy"


async def test_login_records_where_it_came_from(client, app):
    await create_staff(app, "operator", username="hanako")
    assert (await login(client, "hanako", **{"X-Forwarded-For": "198.51.100.9"})).status_code == 201
    (session,) = rows(app, "SELECT source_ip FROM staff_sessions")
    assert session["source_ip"] == "198.51.100.9"
