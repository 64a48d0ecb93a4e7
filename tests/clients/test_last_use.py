"""An API key's last use is recorded when the request it authenticated is refused too:
a key someone found and probes (answered 404 or 422) must not look unused."""

from __future__ import annotations

import pytest

from tests.staff.helpers import make_key, rows

PROBES = [
    ("get", "/v1/verifications/ver_madeup", None, 404),
    ("post", "/v1/verifications", {"phone": "123", "purpose": "coupon_usage"}, 422),
    ("post", "/v1/verifications", {"purpose": "coupon_usage"}, 422),  # the framework's
]


def last_used(app) -> list[object]:
    return [row["last_used_at"] for row in rows(app, "SELECT last_used_at FROM api_keys")]


@pytest.mark.parametrize(("method", "path", "body", "status"), PROBES)
async def test_a_refused_request_records_its_keys_use(
    client, app, clock, method, path, body, status
):
    auth = await make_key(app, ["verifications:write"])
    assert last_used(app) == [None]
    kwargs = {"json": body} if body is not None else {}
    answer = await getattr(client, method)(path, headers=auth, **kwargs)
    assert answer.status_code == status, answer.text
    assert last_used(app) != [None]
    first = last_used(app)
    clock.advance(minutes=6)  # past the resolution: recorded again
    answer = await getattr(client, method)(path, headers=auth, **kwargs)
    assert answer.status_code == status, answer.text
    assert last_used(app) != first
