"""Starting verifications: normalisation, idempotency, authentication and bad input."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from app.clients import service as clients
from tests.conftest import TEST_KEYS, call, snapshot
from tests.fixtures.flows import PHONE_E164, check, sent_code, start


@pytest.mark.parametrize(
    "phone", ["090-1234-5678", "09012345678", "+81 90 1234 5678", "+819012345678"]
)
async def test_number_formats_normalise_to_one_e164(client, app, carrier, auth, phone):
    answer = await start(client, auth, phone=phone)
    assert answer.status_code == 201, answer.text
    await app.state.outbox.drain()
    assert [message.to for message in carrier.sent] == [PHONE_E164]


async def test_start_answers_expiry_and_resend_time(client, clock, auth):
    body = (await start(client, auth)).json()
    now = clock.now()
    assert dt.datetime.fromisoformat(body["expires_at"]) == now + dt.timedelta(minutes=10)
    assert dt.datetime.fromisoformat(body["resend_after"]) == now + dt.timedelta(seconds=30)
    assert body["delivery"]["state"] == "queued"


@pytest.mark.parametrize(
    ("locale", "text"), [("ja", "認証コード"), ("ko", "인증번호"), ("en", "Your")]
)
async def test_message_language_follows_locale(client, app, carrier, auth, locale, text):
    # A Korean-language start reads a national number as Korean unless told otherwise.
    assert (await start(client, auth, locale=locale, country="JP")).status_code == 201
    await app.state.outbox.drain()
    body = carrier.sent[-1].body
    assert text in body
    assert body.splitlines()[-1].startswith("@localhost #")


async def test_idempotent_replay_returns_first_answer_and_sends_one_sms(client, app, carrier, auth):
    headers = {"Idempotency-Key": "order-42"}
    first = await start(client, auth, headers=headers)
    second = await start(client, auth, headers=headers)
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    # Both say where the verification is read, and it is read there.
    location = f"/v1/verifications/{first.json()['id']}"
    assert first.headers["Location"] == second.headers["Location"] == location
    read = await client.get(location, headers=auth)
    assert read.status_code == 200
    assert read.json()["id"] == first.json()["id"]
    await app.state.outbox.drain()
    assert len(carrier.sent) == 1


async def test_concurrent_replays_send_one_sms(client, app, carrier, auth):
    headers = {"Idempotency-Key": "burst"}
    answers = await asyncio.gather(*(start(client, auth, headers=headers) for _ in range(10)))
    assert {answer.json()["id"] for answer in answers} == {answers[0].json()["id"]}
    await app.state.outbox.drain()
    assert len(carrier.sent) == 1


async def test_idempotency_key_with_another_body_is_refused(client, app, auth):
    await start(client, auth, headers={"Idempotency-Key": "k1"})
    before = await snapshot(app)
    other = await start(client, auth, phone="090-9999-0000", headers={"Idempotency-Key": "k1"})
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert other.json()["errors"][0] | {"detail": ""} == {
        "location": "header",
        "field": "Idempotency-Key",
        "detail": "",
    }  # a frontend shows the refusal by what it is about
    assert await snapshot(app) == before


async def test_a_header_given_twice_is_refused_not_read_as_either(client, app, auth):
    """Two Idempotency-Key headers were read as the first (a replay with only the second
    sent a second SMS), and two Authorization headers as the first key: a proxy or a log
    may have read the other. Refused as a JSON key given twice is, and nothing written."""
    before = await snapshot(app)
    body = {"phone": "090-1234-5678", "purpose": "coupon_usage"}
    twice = [*auth.items(), ("Idempotency-Key", "k1"), ("Idempotency-Key", "k2")]
    answer = await client.post("/v1/verifications", json=body, headers=twice)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"] == [
        {"location": "header", "field": "Idempotency-Key", "detail": "given more than once"}
    ]
    # A caller without a key learns nothing of its input: 401 before the header's 422.
    anonymous = [("Idempotency-Key", "k1"), ("Idempotency-Key", "k2")]
    answer = await client.post("/v1/verifications", json=body, headers=anonymous)
    assert answer.status_code == 401, answer.text
    ((name, key),) = auth.items()
    for other in (key, "Bearer smsreg_sk_another"):
        answer = await client.post(
            "/v1/verifications", json=body, headers=[(name, key), ("Authorization", other)]
        )
        assert answer.status_code == 401, answer.text
        assert "one Authorization header" in answer.json()["detail"]
    assert await snapshot(app) == before


async def test_idempotency_key_expires(client, app, clock, auth):
    first = await start(client, auth, headers={"Idempotency-Key": "k2"})
    clock.advance(hours=24)
    again = await start(client, auth, headers={"Idempotency-Key": "k2"})
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer smsreg_sk_not-a-key"}, 401),
        ({"Authorization": "Bearer something-else"}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
    ],
)
async def test_start_needs_a_live_key(client, app, headers, status):
    before = await snapshot(app)
    answer = await start(client, {}, headers=headers)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert await snapshot(app) == before


async def test_revoked_and_expired_keys_are_refused(client, app, clock, auth, api_key):
    old = await call(
        app,
        clients.create,
        name="short",
        scopes=["verifications:write"],
        created_by="test",
        max_age_days=1,
    )
    clock.advance(days=1)
    expired = await start(client, {"Authorization": f"Bearer {old.token}"})
    assert expired.status_code == 401
    key_id = next(k.id for k in await call(app, clients.list_keys) if k.name == "coupon-frontend")
    assert (await start(client, auth)).status_code == 201
    await call(app, clients.revoke, key_id=key_id, actor="test")
    assert (await start(client, auth)).status_code == 401


LONG = "9" * 40


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "03-1234-5678", "purpose": "coupon_usage"}, "phone"),  # landline
        ({"phone": "0120-123-456", "purpose": "coupon_usage"}, "phone"),  # toll-free
        ({"phone": "+86 139 1234 5678", "purpose": "coupon_usage"}, "phone"),  # foreign region
        ({"phone": "010-2345-6789", "purpose": "coupon_usage"}, "phone"),  # KR, read as JP
        ({"phone": "090-1234-5678", "purpose": "coupon_usage", "country": "US"}, "country"),
        ({"phone": "+1 202-555-0143", "purpose": "coupon_usage"}, "phone"),
        ({"phone": "090-1234", "purpose": "coupon_usage"}, "phone"),  # too short
        ({"phone": "hello", "purpose": "coupon_usage"}, "phone"),
        ({"phone": "090-1234-5678 ext 1", "purpose": "coupon_usage"}, "phone"),  # extension
        ({"phone": "+81 90 1234 5678;ext=2", "purpose": "coupon_usage"}, "phone"),
        # Letters: phonenumbers would read them as keypad digits (+819022555678).
        ({"phone": "090-CALL-5678", "purpose": "coupon_usage"}, "phone"),
        ({"phone": "090-1234-ｌｏｖｅ", "purpose": "coupon_usage"}, "phone"),
        # What phonenumbers skips before the first digit and after the last.
        ({"phone": "090-1234-5678!!!", "purpose": "coupon_usage"}, "phone"),
        ({"phone": "090-1234-5678\u0000", "purpose": "coupon_usage"}, "phone"),
        ({"phone": "\u0000090-1234-5678", "purpose": "coupon_usage"}, "phone"),
        ({"phone": "090-1234-5678\u202e", "purpose": "coupon_usage"}, "phone"),  # an override
        ({"phone": "090-1234-5678\n", "purpose": "coupon_usage"}, "phone"),
        ({"phone": "*090-1234-5678", "purpose": "coupon_usage"}, "phone"),
        ({"phone": LONG, "purpose": "coupon_usage"}, "phone"),  # oversize field
        ({"phone": "", "purpose": "coupon_usage"}, "phone"),
        ({"phone": 9012345678, "purpose": "coupon_usage"}, "phone"),  # wrong type
        ({"phone": ["090-1234-5678"], "purpose": "coupon_usage"}, "phone"),
        ({"phone": None, "purpose": "coupon_usage"}, "phone"),
        ({"purpose": "coupon_usage"}, "phone"),  # missing
        ({"phone": "090-1234-5678", "purpose": "marketing"}, "purpose"),  # unknown purpose
        ({"phone": "090-1234-5678", "purpose": 1}, "purpose"),
        ({"phone": "090-1234-5678"}, "purpose"),
        ({"phone": "090-1234-5678", "purpose": "coupon_usage", "locale": "fr"}, "locale"),
        ({"phone": "090-1234-5678", "purpose": "coupon_usage", "locale": 5}, "locale"),
        ({"phone": "090-1234-5678", "purpose": "coupon_usage", "admin": True}, "admin"),
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(client, app, auth, body, field):
    before = await snapshot(app)
    answer = await client.post("/v1/verifications", json=body, headers=auth)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert field in [error["field"] for error in problem["errors"]]
    assert await snapshot(app) == before


@pytest.mark.parametrize(
    ("content", "content_type", "status", "field"),
    [
        (b"{not json", "application/json", 400, "body"),
        (b"", "application/json", 422, "body"),
        (b"[1, 2]", "application/json", 422, "body"),
        (b"phone=1", "application/x-www-form-urlencoded", 415, "Content-Type"),
        ('{"phone": "\udcff"}'.encode("utf-8", "surrogatepass"), "application/json", 422, "phone"),
    ],
)
async def test_malformed_bodies(client, app, auth, content, content_type, status, field):
    before = await snapshot(app)
    answer = await client.post(
        "/v1/verifications", content=content, headers={**auth, "Content-Type": content_type}
    )
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"][0]["field"] == field
    assert await snapshot(app) == before


async def test_oversize_body_is_refused_before_parsing(client, app, auth):
    before = await snapshot(app)
    cap = app.state.settings.max_body_bytes
    big = b'{"phone": "' + b"9" * cap + b'", "purpose": "coupon_usage"}'
    answer = await client.post(
        "/v1/verifications", content=big, headers={**auth, "Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    assert answer.json()["type"].endswith("/payload-too-large")

    async def chunks():  # no Content-Length: counted as it streams
        for _ in range(cap // 1000 + 2):
            yield b" " * 1000

    streamed = await client.post(
        "/v1/verifications", content=chunks(), headers={**auth, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert await snapshot(app) == before


async def test_a_declared_oversize_body_is_refused_where_no_body_is_taken(client, app, auth):
    """The cap refuses by Content-Length before routing: an operation without a body
    answers 413 too, as openapi.yaml documents for every operation."""
    oversize = b" " * (app.state.settings.max_body_bytes + 1)
    answer = await client.request(
        "GET", "/v1/verifications/ver_missing", content=oversize, headers=auth
    )
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("/payload-too-large")
    operation = app.openapi()["paths"]["/v1/verifications/{verification_id}"]["get"]
    assert "413" in operation["responses"]


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9".encode("latin-1"), "a\tb"])
async def test_bad_idempotency_keys(client, app, auth, key):
    before = await snapshot(app)
    answer = await start(client, auth, headers={"Idempotency-Key": key})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "Idempotency-Key"
    assert answer.json()["errors"][0]["location"] == "header"
    assert await snapshot(app) == before


@pytest.mark.parametrize(
    "path", ["/v1/verifications/not-an-id", "/v1/verifications/ver_" + "a" * 60]
)
async def test_bad_ids_name_the_path_field(client, auth, path):
    answer = await client.get(path, headers=auth)
    assert answer.status_code == 422
    assert answer.json()["errors"][0] == {
        "location": "path",
        "field": "verification_id",
        "detail": answer.json()["errors"][0]["detail"],
    }


async def test_unknown_route_and_method_are_problems(client, auth):
    missing = await client.get("/v1/nothing", headers=auth)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong_method = await client.delete("/v1/verifications", headers=auth)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"
    assert wrong_method.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/v1/api-keys", "GET, POST"),
        ("/v1/staff/invitations", "GET, POST"),
        ("/v1/disclosures", "GET, POST"),
        ("/v1/subscribers/sub_x/consents", "GET, POST"),
        # Not the methods of another operation whose parameter the path also matches.
        ("/v1/staff/sessions", "POST"),
        ("/v1/staff/me/totp", "GET, POST"),
    ],
)
async def test_allow_names_every_method_the_path_takes(client, path, allow):
    """FastAPI makes a route per operation: Allow named only the first one's method."""
    answer = await client.patch(path, json={})
    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == allow


async def test_code_never_in_api_answers(client, app, carrier, auth):
    started = await start(client, auth)
    code = await sent_code(app, carrier)
    read = await client.get(f"/v1/verifications/{started.json()['id']}", headers=auth)
    for answer in (started, read):
        assert code not in answer.text.replace(answer.json()["id"], "")


LONGEST_KEY_ID = "k" * 40  # the longest a key id may be


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            **{f"{family}_keys": {LONGEST_KEY_ID: key} for family, key in TEST_KEYS.items()},
            **{f"{family}_key_id": LONGEST_KEY_ID for family in TEST_KEYS},
        }
    ],
)
async def test_every_column_holds_what_a_start_writes_with_the_longest_key_ids(
    client, app, carrier, auth
):
    """Blind indexes lead with their key id; PostgreSQL enforces column lengths."""
    started = await start(client, auth)
    assert started.status_code == 201, started.text
    code = await sent_code(app, carrier)
    checked = await check(client, auth, started.json()["id"], code)
    assert checked.status_code == 200, checked.text


async def test_a_korean_national_number_starts_with_its_country_or_korean_locale(
    client, carrier, app, auth
):
    for extra in ({"country": "KR"}, {"locale": "ko"}):
        response = await start(client, auth, phone="010-2345-6789", **extra)
        assert response.status_code == 201, response.text
        assert response.json()["phone_masked"].startswith("+82 10-")
        app.state.ctx.clock.advance(seconds=31)
    refused = await start(client, auth, phone="010-2345-6789")
    assert refused.status_code == 422
    assert "KR" in refused.json()["errors"][0]["detail"]
