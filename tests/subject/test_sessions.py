"""Subject sessions: opened only by proving the number by SMS, short-lived, one subscriber,
refused everywhere else, and no other credential opens them."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from tests.fixtures.flows import sent_code
from tests.staff.helpers import events, make_key, rows, verified
from tests.subject.helpers import open_session, send_code

NUMBER = "+819011112222"
OTHER = "+819033334444"
THIRD = "+819055556666"


async def test_a_verified_number_opens_a_session_on_its_own_subscriber_only(client, app, carrier):
    auth = await make_key(app, ["verifications:write"])
    mine = await verified(client, app, carrier, auth, NUMBER)
    await verified(client, app, carrier, auth, OTHER)
    headers = await open_session(client, app, carrier, NUMBER)
    data = await client.get("/v1/subject/data", headers=headers)
    assert data.status_code == 200, data.text
    body = data.json()
    assert body["subject_id"] == mine
    assert body["phone_masked"] == "+81 90-****-2222"
    assert [p["purpose"] for p in body["purposes"]] == ["coupon_usage"]
    assert data.headers["cache-control"] == "no-store"
    assert NUMBER not in data.text
    assert events(app, "subject:session:opened")[0]["subject"] == mine
    # The token is stored only as its keyed hash.
    token = headers["Authorization"].split()[1]
    assert token.startswith("smsreg_st_")
    assert not rows(app, "SELECT id FROM subject_sessions WHERE token_hash = :t", t=token)


async def test_a_wrong_code_opens_nothing_and_counts(client, app, carrier):
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    verification_id = await send_code(client, NUMBER)
    code = await sent_code(app, carrier, NUMBER)
    wrong = "000000" if code != "000000" else "111111"
    response = await client.post(
        "/v1/subject/sessions", json={"verification_id": verification_id, "code": wrong}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert rows(app, "SELECT attempts FROM verifications WHERE id = :v", v=verification_id) == [
        {"attempts": 1}
    ]
    assert not rows(app, "SELECT id FROM subject_sessions")
    # A code works once: the right one opens one session, and a replay opens none.
    body = {"verification_id": verification_id, "code": code}
    assert (await client.post("/v1/subject/sessions", json=body)).status_code == 201
    assert (await client.post("/v1/subject/sessions", json=body)).status_code == 409
    assert len(rows(app, "SELECT id FROM subject_sessions")) == 1


async def test_a_number_not_held_is_told_so(client, app, carrier):
    verification_id = await send_code(client, NUMBER)
    code = await sent_code(app, carrier, NUMBER)
    response = await client.post(
        "/v1/subject/sessions", json={"verification_id": verification_id, "code": code}
    )
    assert response.status_code == 404
    assert response.json()["type"].endswith("/subject-nothing-held")
    # Proving a number registers nothing.
    assert not rows(app, "SELECT id FROM subscribers")


async def test_a_client_verification_cannot_be_exchanged(client, app, carrier):
    """Only the service's own verifications open sessions: a client's data_subject code,
    which the client saw, opens nothing."""
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    started = await client.post(
        "/v1/verifications", json={"phone": NUMBER, "purpose": "data_subject"}, headers=auth
    )
    code = await sent_code(app, carrier, NUMBER)
    response = await client.post(
        "/v1/subject/sessions", json={"verification_id": started.json()["id"], "code": code}
    )
    assert response.status_code == 404


async def test_the_session_ends_after_its_minutes_and_on_request(client, app, carrier, clock):
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    headers = await open_session(client, app, carrier, NUMBER)
    clock.advance(minutes=15, seconds=-1)
    assert (await client.get("/v1/subject/data", headers=headers)).status_code == 200
    clock.advance(seconds=1)
    assert (await client.get("/v1/subject/data", headers=headers)).status_code == 401
    clock.advance(minutes=1)  # past the resend cooldown
    headers = await open_session(client, app, carrier, NUMBER)
    ended = await client.delete("/v1/subject/session", headers=headers)
    assert ended.status_code == 204
    assert ended.content == b"" and "content-type" not in ended.headers
    assert (await client.get("/v1/subject/data", headers=headers)).status_code == 401


@pytest.mark.parametrize(
    "path",
    ["/v1/verifications/ver_madeup", "/v1/staff/me", "/v1/subscribers/sub_madeup"],
)
async def test_a_subject_token_is_refused_elsewhere(client, app, carrier, path):
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    headers = await open_session(client, app, carrier, NUMBER)
    assert (await client.get(path, headers=headers)).status_code == 401


async def test_other_credentials_are_refused_on_subject_routes(client, app):
    auth = await make_key(app, ["verifications:write"])
    assert (await client.get("/v1/subject/data", headers=auth)).status_code == 401
    assert (await client.get("/v1/subject/data")).status_code == 401


async def test_self_service_verifications_are_counted_like_the_clients(client, app, carrier):
    """smsreg_verifications_*_total{purpose="data_subject"} stayed at 0: only the client
    routes counted."""
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    labels = {"purpose": "data_subject"}
    before = {name: _sample(name, labels) for name in ("started", "approved")}
    await open_session(client, app, carrier, NUMBER)
    assert _sample("started", labels) == before["started"] + 1
    assert _sample("approved", labels) == before["approved"] + 1


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(f"smsreg_verifications_{name}_total", labels) or 0.0


async def test_a_subjects_code_is_never_bound_to_the_coupon_site(client, app, carrier):
    """The coupon site's pages must not be offered a code that opens the person's
    records: a data subject's code has its own words and no WebOTP line for the coupon
    site (here no PUBLIC_BASE_URL, so no line at all)."""
    assert app.state.ctx.settings.webotp_domain  # the coupon codes' line is on
    await send_code(client, NUMBER, body={"locale": "en"})
    code = await sent_code(app, carrier, NUMBER)
    body = carrier.to(NUMBER)[-1].body
    assert body == f"Your smsreg code for your data page is {code}. Valid for 10 min."


@pytest.mark.parametrize(
    "settings_overrides", [{"public_base_url": "https://sms.example.co.jp/base"}]
)
async def test_a_subjects_code_is_bound_to_the_host_of_the_data_pages(client, app, carrier):
    await send_code(client, NUMBER, body={"locale": "ja"})
    code = await sent_code(app, carrier, NUMBER)
    lines = carrier.to(NUMBER)[-1].body.splitlines()
    assert lines == [f"smsregのデータ確認用コード: {code}（10分間有効）",
                     f"@sms.example.co.jp #{code}"]  # fmt: skip
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, OTHER)
    coupon = carrier.to(OTHER)[-1].body.splitlines()
    assert coupon[-1].startswith(f"@{app.state.ctx.settings.webotp_domain} #")
    # A frontend's own data_subject verification is the frontend's code, for its site.
    body = {"phone": THIRD, "purpose": "data_subject", "locale": "en"}
    started = await client.post("/v1/verifications", json=body, headers=auth)
    assert started.status_code == 201, started.text
    code = await sent_code(app, carrier, THIRD)
    assert carrier.to(THIRD)[-1].body.splitlines() == [
        f"Your smsreg code is {code}. Valid for 10 min.",
        f"@{app.state.ctx.settings.webotp_domain} #{code}",
    ]
