"""Consent to coupon delivery: opt-in needs a verified number, every change is kept,
the current state follows the newest change, and bad input writes nothing."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app.clients import service as clients
from app.consent import service
from app.consent.schemas import SERVICE_SOURCES, ConsentChange
from app.core.db import Database
from tests.conftest import call
from tests.consent.helpers import consent, counts, jp, make_key, opted_in, register, rows, verified


@pytest.fixture
def settings_overrides():
    return {"allowed_regions": ["JP", "KR"], "trusted_proxies": ["10.0.0.0/8"]}


async def test_opt_in_after_sms_verification_and_read_back(client, app, carrier, full_auth):
    subscriber_id = await verified(client, app, carrier, full_auth, jp(1))
    answer = await consent(client, full_auth, subscriber_id)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["subscriber_id"] == subscriber_id
    assert body["status"] == "opted_in"
    assert body["policy_version"] == "2026-04"
    assert body["locale"] == "ja"  # a Japanese number

    read = await client.get(f"/v1/subscribers/{subscriber_id}/consents", headers=full_auth)
    assert read.status_code == 200
    state = read.json()
    assert state["consents"] == [
        {
            "purpose": "coupon_delivery",
            "status": "opted_in",
            "locale": "ja",
            "source": "web",
            "policy_version": "2026-04",
            "changed_at": body["changed_at"],
        }
    ]
    [entry] = state["history"]
    assert entry["action"] == "opt_in"
    assert entry["client_ip"] == "203.0.113.7"
    assert entry["actor"].startswith("api_key:key_")
    # Never a number, in any form.
    for text in (answer.text, read.text):
        assert jp(1) not in text and jp(1)[3:] not in text and jp(1)[-8:] not in text


async def test_no_consent_yet_reads_as_none(client, app, full_auth):
    subscriber_id = await register(app, jp(2))
    read = await client.get(f"/v1/subscribers/{subscriber_id}/consents", headers=full_auth)
    assert read.json()["consents"] == [
        {
            "purpose": "coupon_delivery",
            "status": "none",
            "locale": None,
            "source": None,
            "policy_version": None,
            "changed_at": None,
        }
    ]
    assert read.json()["history"] == []


async def test_opt_in_needs_the_number_verified_for_coupon_delivery(client, app, full_auth):
    subscriber_id = await register(app, jp(3), purposes=("coupon_usage",))
    before = counts(app)
    answer = await consent(client, full_auth, subscriber_id)
    assert answer.status_code == 409
    problem = answer.json()
    assert problem["type"].endswith("/not-verified-for-purpose")
    assert problem["errors"][0]["field"] == "purpose"
    assert counts(app) == before


async def test_opt_out_is_kept_in_an_append_only_history(client, app, clock, full_auth):
    subscriber_id = await register(app, jp(4))
    await opted_in(client, full_auth, subscriber_id)
    first = rows(app, "SELECT * FROM consent_events")
    clock.advance(days=3)
    out = await consent(client, full_auth, subscriber_id, "opt_out", source="app")
    assert out.status_code == 201
    assert out.json()["status"] == "opted_out"
    clock.advance(days=1)
    await opted_in(client, full_auth, subscriber_id, policy_version="2026-05")

    history = (
        await client.get(f"/v1/subscribers/{subscriber_id}/consents", headers=full_auth)
    ).json()["history"]
    assert [(e["action"], e["source"], e["policy_version"]) for e in history] == [
        ("opt_in", "web", "2026-05"),
        ("opt_out", "app", None),
        ("opt_in", "web", "2026-04"),
    ]
    times = [e["at"] for e in history]
    assert times == sorted(times, reverse=True)
    # Earlier rows are never rewritten.
    assert rows(app, "SELECT * FROM consent_events ORDER BY id")[:1] == first
    state = rows(app, "SELECT status, policy_version FROM consents")
    assert [tuple(row) for row in state] == [("opted_in", "2026-05")]


async def test_locale_explicit_or_from_the_numbers_country(client, app, full_auth):
    korean = await register(app, "+821012345678")
    await opted_in(client, full_auth, korean)
    assert rows(app, "SELECT locale FROM consents WHERE subscriber_id = :s", s=korean)[0][0] == "ko"
    japanese = await register(app, jp(5))
    answer = await consent(client, full_auth, japanese, locale="en-GB")
    assert answer.json()["locale"] == "en"
    # An opt-out keeps the language already chosen.
    out = await consent(client, full_auth, japanese, "opt_out")
    assert out.json()["locale"] == "en"


@pytest.mark.parametrize(
    ("peer", "forwarded", "recorded"),
    [
        ("10.0.0.5", "198.51.100.23", "198.51.100.23"),  # from our proxy: believed
        ("198.51.100.9", "192.0.2.1", "198.51.100.9"),  # from anyone else: ignored
        # What our proxy passed on that is no address: never kept as one (it could be a
        # phone number), and never a 500 for a value longer than the column.
        ("10.0.0.5", "09012345678", "unknown"),
        ("10.0.0.5", "203.0.113.7" + "0" * 60, "unknown"),
        ("10.0.0.5", '=HYPERLINK("http://x/")', "unknown"),
        ("10.0.0.5", "2001:DB8::1", "2001:db8::1"),
        ("10.0.0.5", "fe80::1%09012345678", "unknown"),  # a zone holds any text
    ],
)
async def test_client_ip_is_found_like_the_send_limits_find_it(
    client, app, full_auth, peer, forwarded, recorded
):
    subscriber_id = await register(app, jp(6))
    transport = httpx.ASGITransport(app=app, client=(peer, 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        answer = await consent(http, {**full_auth, "X-Forwarded-For": forwarded}, subscriber_id)
    assert answer.status_code == 201
    assert rows(app, "SELECT client_ip FROM consent_events")[0][0] == recorded


async def test_opt_out_of_an_unverified_purpose_is_still_recorded(client, app, full_auth):
    # A person may always say no, even before ever saying yes.
    subscriber_id = await register(app, jp(7), purposes=("coupon_usage",))
    answer = await consent(client, full_auth, subscriber_id, "opt_out")
    assert answer.status_code == 201
    assert answer.json()["status"] == "opted_out"


async def test_unknown_subscriber_is_not_found_and_nothing_is_written(client, app, full_auth):
    before = counts(app)
    for action in ("opt_in", "opt_out"):
        answer = await consent(client, full_auth, "sub_doesnotexist", action)
        assert answer.status_code == 404
        assert answer.json()["type"].endswith("/subscriber-not-found")
    read = await client.get("/v1/subscribers/sub_doesnotexist/consents", headers=full_auth)
    assert read.status_code == 404
    assert counts(app) == before


GOOD = {"purpose": "coupon_delivery", "action": "opt_in", "source": "web", "policy_version": "v1"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in GOOD.items() if k != "purpose"}, "purpose"),
        ({**GOOD, "purpose": "coupon_usage"}, "purpose"),
        ({**GOOD, "purpose": "marketing"}, "purpose"),
        ({k: v for k, v in GOOD.items() if k != "action"}, "action"),
        ({**GOOD, "action": "maybe"}, "action"),
        ({k: v for k, v in GOOD.items() if k != "source"}, "source"),
        ({**GOOD, "source": ""}, "source"),
        ({**GOOD, "source": "Web Site"}, "source"),
        ({**GOOD, "source": "x" * 33}, "source"),
        # The service's own: the person's page would tell them they did it themselves.
        *(({**GOOD, "source": source}, "source") for source in SERVICE_SOURCES),
        ({k: v for k, v in GOOD.items() if k != "policy_version"}, "policy_version"),
        ({**GOOD, "policy_version": ""}, "policy_version"),
        ({**GOOD, "policy_version": "v" * 65}, "policy_version"),
        ({**GOOD, "policy_version": "v1\n"}, "policy_version"),
        # Kept in the consent history for years: never a number.
        ({**GOOD, "policy_version": "v 090 1234 5679"}, "policy_version"),
        ({**GOOD, "source": "a090_1234_5679"}, "source"),
        ({**GOOD, "locale": "fr"}, "locale"),
        ({**GOOD, "phone": "+819012345678"}, "phone"),
        ({**GOOD, "action": ["opt_in"]}, "action"),
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(client, app, full_auth, body, field):
    subscriber_id = await register(app, jp(8))
    before = counts(app)
    answer = await client.post(
        f"/v1/subscribers/{subscriber_id}/consents", json=body, headers=full_auth
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert field in {error["field"] for error in answer.json()["errors"]}
    assert "<" not in answer.text  # a value's own text in the message, never a repr
    assert counts(app) == before


@pytest.mark.parametrize(
    "subscriber_id", ["nope", "sub_", "sub_a/b", "sub_" + "a" * 40, "ver_abcdefgh"]
)
async def test_bad_subscriber_id_in_the_path(client, app, full_auth, subscriber_id):
    before = counts(app)
    url = f"/v1/subscribers/{subscriber_id}/consents"
    for answer in (
        await client.post(url, json=GOOD, headers=full_auth),
        await client.get(url, headers=full_auth),
    ):
        assert answer.status_code in (404, 422), answer.text
        if answer.status_code == 422:
            assert answer.json()["errors"][0]["field"] == "subscriber_id"
    assert counts(app) == before


async def test_bad_json_and_wrong_content(client, app, full_auth):
    subscriber_id = await register(app, jp(9))
    before = counts(app)
    url = f"/v1/subscribers/{subscriber_id}/consents"
    broken = await client.post(
        url, content=b"{not json", headers={**full_auth, "Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["errors"][0]["field"] == "body"
    listed = await client.post(url, json=[GOOD], headers=full_auth)
    assert listed.status_code == 422
    assert counts(app) == before


async def test_keys_need_the_consents_scope(client, app, auth):
    subscriber_id = await register(app, jp(10))
    before = counts(app)
    url = f"/v1/subscribers/{subscriber_id}/consents"
    assert (await client.post(url, json=GOOD)).status_code == 401
    assert (await client.get(url)).status_code == 401
    bad_key = {"Authorization": "Bearer smsreg_sk_not-a-real-key"}
    assert (await client.post(url, json=GOOD, headers=bad_key)).status_code == 401
    # `auth` only has verifications:write.
    assert (await client.post(url, json=GOOD, headers=auth)).status_code == 403
    assert (await client.get(url, headers=auth)).status_code == 403
    # Bad input from a caller without a valid key learns nothing about the input.
    assert (await client.post(url, json={"purpose": 1})).status_code == 401
    assert (await client.post(url, json={"purpose": 1}, headers=auth)).status_code == 403
    assert counts(app)["consent_events"] == before["consent_events"] == 0


async def test_revoked_key_stops_at_once(client, app):
    headers = await make_key(app, ["consents:write"])
    subscriber_id = await register(app, jp(11))
    await opted_in(client, headers, subscriber_id)
    key_id = rows(app, "SELECT id FROM api_keys WHERE name = 'coupon-frontend'")[0][0]
    await call(app, clients.revoke, key_id=key_id, actor="test")
    assert (await consent(client, headers, subscriber_id, "opt_out")).status_code == 401


async def test_concurrent_changes_leave_state_and_newest_history_in_agreement(client, app):
    """Twenty threads, each on its own connection, flip one subscriber's consent."""
    ctx = app.state.ctx
    subscriber_id = await register(app, jp(12))
    token = (await make_key(app, ["consents:write"]))["Authorization"].split()[1]
    caller = await call(app, clients.authenticate, token=token)

    def one(i: int) -> None:
        action = "opt_in" if i % 2 else "opt_out"
        data = ConsentChange(
            purpose="coupon_delivery",
            action=action,
            source="web",
            policy_version=f"v{i}" if action == "opt_in" else None,
        )

        async def change() -> None:
            db = Database(app.state.db.url)  # its own connection, as another process
            try:
                async with db.transaction() as tx:
                    await service.record(
                        tx, ctx, client=caller, subscriber_id=subscriber_id, data=data, ip="x"
                    )
            finally:
                await db.dispose()

        asyncio.run(change())

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(one, range(20)))
    events = rows(app, "SELECT id, action, policy_version FROM consent_events ORDER BY id")
    assert len(events) == 20
    newest = events[-1]
    [state] = rows(app, "SELECT status, policy_version, event_id FROM consents")
    assert state.event_id == newest.id
    assert state.status == {"opt_in": "opted_in", "opt_out": "opted_out"}[newest.action]
    assert state.policy_version == newest.policy_version


async def test_a_client_reads_only_the_addresses_its_own_changes_came_from(
    client, app, carrier, full_auth
):
    """Every key with consents:write read every address in the history: another client's,
    and the person's own, from a withdrawal on the self-service pages."""
    subscriber_id = await verified(client, app, carrier, full_auth, jp(7))
    await opted_in(client, full_auth, subscriber_id)
    other = await make_key(app, ["consents:write"])
    seen = await client.get(f"/v1/subscribers/{subscriber_id}/consents", headers=other)
    assert [entry["client_ip"] for entry in seen.json()["history"]] == [None]
    own = await client.get(f"/v1/subscribers/{subscriber_id}/consents", headers=full_auth)
    assert [entry["client_ip"] for entry in own.json()["history"]] == ["203.0.113.7"]
    withdrawn = await consent(client, other, subscriber_id, "opt_out")
    assert withdrawn.status_code == 201, withdrawn.text
    own = await client.get(f"/v1/subscribers/{subscriber_id}/consents", headers=full_auth)
    assert [entry["client_ip"] for entry in own.json()["history"]] == [None, "203.0.113.7"]
    assert rows(app, "SELECT count(*) FROM consent_events WHERE client_ip IS NOT NULL")[0][0] == 2
