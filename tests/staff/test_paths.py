"""A fixed path (under /v1/staff, /v1/subscribers/search) asked with a method it does not
take is 405, never an id."""

from __future__ import annotations

import pytest
from fastapi.routing import iter_route_contexts

from app.staff.paths import FIXED
from tests.staff.helpers import staff_auth


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/staff/me/totp", "GET, POST"),
        ("GET", "/v1/staff/enrolment", "POST"),
        ("GET", "/v1/staff/sessions", "POST"),
        ("PUT", "/v1/staff/me", "GET"),
        ("GET", "/v1/subscribers/search", "POST"),
    ],
)
async def test_a_fixed_path_with_another_method_is_405(client, app, method, path, allow):
    # A privacy officer may read subscribers: GET /v1/subscribers/search was answered 422
    # for a subscriber_id never sent (an admin got 403).
    admin = await staff_auth(app, client, "privacy_officer" if "subscribers" in path else "admin")
    answer = await client.request(method, path, headers=admin)
    assert answer.status_code == 405, answer.text
    assert answer.json()["type"].endswith("/method-not-allowed")
    assert answer.headers["allow"] == allow


async def test_any_other_segment_is_still_a_staff_id(client, app):
    admin = await staff_auth(app, client, "admin")
    answer = await client.delete("/v1/staff/mine/totp", headers=admin)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "staff_id"


def test_every_fixed_segment_under_v1_staff_is_kept_from_the_staff_id(app):
    fixed = {
        route.path_format.split("/")[3]
        for route in iter_route_contexts(app.routes)
        if route.path_format.startswith("/v1/staff/")
    } - {"{staff_id}"}
    assert fixed == set(FIXED)
