"""Staff views of the registry: masked search and read, the privacy officer's reveal,
each written to the access log, which never holds a number."""

from __future__ import annotations

import pytest

from tests.conftest import count_rows
from tests.staff.helpers import (
    bearer,
    dump,
    events,
    make_key,
    rows,
    staff_auth,
    verified,
)

E164 = "+819012345678"
NUMBER_FORMS = ("+819012345678", "819012345678", "09012345678", "090-1234-5678", "12345678")
REASON = "Subject's access request by letter, case 2026-118"


@pytest.fixture
async def subscriber(client, app, carrier, auth) -> str:
    return await verified(client, app, carrier, auth, E164)


def access_rows(app):
    return rows(app, "SELECT * FROM access_log ORDER BY id")


@pytest.mark.parametrize("role", ["operator", "privacy_officer"])
async def test_search_by_number_shows_it_masked_and_is_logged(client, app, subscriber, role):
    headers = await staff_auth(app, client, role)
    answer = await client.post(
        "/v1/subscribers/search", json={"phone": "+81 90 1234 5678"}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    (found,) = answer.json()["subscribers"]
    assert found["id"] == subscriber
    assert found["phone_masked"] == "+81 90-****-5678"
    assert [p["purpose"] for p in found["purposes"]] == ["coupon_usage"]
    assert found["consents"] == []
    assert found["created_at"] == found["last_verified_at"] == "2026-11-22T00:00:00Z"
    for form in NUMBER_FORMS[:4]:
        assert form not in answer.text

    (entry,) = access_rows(app)
    assert entry["action"] == "search_number" and entry["subscriber_id"] == subscriber
    assert entry["staff_role"] == role and entry["source_ip"] == "203.0.113.7"
    assert entry["reason"] is None
    assert len(events(app, "staff:subscriber:searched")) == 1


async def test_a_search_that_finds_no_one_is_logged_too(client, app, subscriber):
    headers = await staff_auth(app, client, "operator")
    answer = await client.post(
        "/v1/subscribers/search", json={"phone": "080-9999-0000"}, headers=headers
    )
    assert answer.status_code == 200 and answer.json() == {"subscribers": []}
    (entry,) = access_rows(app)
    assert entry["action"] == "search_number" and entry["subscriber_id"] is None
    assert "9999" not in dump(app, "access_log")


async def test_consent_summary_is_shown(client, app, carrier):
    service = await make_key(app, ["verifications:write", "consents:write"])
    subscriber = await verified(client, app, carrier, service, E164, purpose="coupon_delivery")
    opted = await client.post(
        f"/v1/subscribers/{subscriber}/consents",
        json={
            "purpose": "coupon_delivery",
            "action": "opt_in",
            "source": "web",
            "policy_version": "2026-04",
        },
        headers=service,
    )
    assert opted.status_code == 201, opted.text
    headers = await staff_auth(app, client, "operator")
    answer = await client.get(f"/v1/subscribers/{subscriber}", headers=headers)
    assert answer.status_code == 200, answer.text
    (consent,) = answer.json()["consents"]
    assert consent["purpose"] == "coupon_delivery" and consent["status"] == "opted_in"
    assert consent["policy_version"] == "2026-04" and consent["source"] == "web"


async def test_read_by_id_is_masked_and_logged(client, app, subscriber):
    headers = await staff_auth(app, client, "operator")
    answer = await client.get(f"/v1/subscribers/{subscriber}", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json()["phone_masked"] == "+81 90-****-5678"
    (entry,) = access_rows(app)
    assert entry["action"] == "read" and entry["subscriber_id"] == subscriber

    unknown = await client.get("/v1/subscribers/sub_nobody", headers=headers)
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("/subscriber-not-found")
    bad = await client.get("/v1/subscribers/ver_notasubscriber", headers=headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "subscriber_id"
    assert count_rows(app, "access_log") == 1


async def test_privacy_officer_reveals_with_a_reason_logged(client, app, subscriber, clock):
    headers = await staff_auth(app, client, "privacy_officer", username="sato")
    clock.advance(seconds=61)
    answer = await client.post(
        f"/v1/subscribers/{subscriber}/reveal", json={"reason": REASON}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"subscriber_id": subscriber, "phone": E164}
    assert answer.headers["cache-control"] == "no-store"
    (entry,) = access_rows(app)
    assert entry["action"] == "reveal" and entry["reason"] == REASON
    assert entry["staff_username"] == "sato" and entry["subscriber_id"] == subscriber
    assert str(entry["accessed_at"]).startswith("2026-11-22 00:01:01")  # to the second
    (event,) = events(app, "staff:subscriber:revealed")
    assert event["subject"] == subscriber and event["details"] == {"reason": REASON}


@pytest.mark.parametrize(
    "reason",
    [
        "call 090/1234,5678 now",
        "call +81:90/1234,5678",
        "090、1234。5678 asked",
        # Letters, kana or words between the groups.
        "ticket 090x1234x5678 check",
        "ticket 090の1234の5678 check",
        "ticket 090 1234 and 5678 ok",
        "ticket 090a1234b5678",
        "ticket ⓿❾⓿x❶❷❸❹x❺❻❼❽",  # dingbat digits
        "ticket 〇九〇の壱弐参四の五六七八",  # formal numerals
    ],
)
async def test_a_reason_holding_the_subscribers_number_however_written_is_refused(
    client, app, subscriber, reason
):
    """Anything between the groups, marks that change included: read loosely, since a
    registered number is looked up exactly; the access log never holds it."""
    headers = await staff_auth(app, client, "privacy_officer")
    answer = await client.post(
        f"/v1/subscribers/{subscriber}/reveal", json={"reason": reason}, headers=headers
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "reason" and "5678" not in answer.text
    # The refusal says the number is registered: it is kept as the officer's search, with
    # the subscriber found, never the number; nothing is revealed.
    (entry,) = access_rows(app)
    assert entry["action"] == "search_number" and entry["subscriber_id"] == subscriber
    assert entry["reason"] == "a subscriber's number typed in reason"
    assert not events(app, "staff:subscriber:revealed")
    # Ordinary text with dates, times and amounts so written is no number of anyone's.
    ordinary = "Called on 2026/10/01, 09:30-10:15 about 843,910,756 yen"
    answer = await client.post(
        f"/v1/subscribers/{subscriber}/reveal", json={"reason": ordinary}, headers=headers
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("role", ["operator", "auditor", "admin"])
async def test_no_one_else_may_reveal(client, app, subscriber, role):
    headers = await staff_auth(app, client, role)
    answer = await client.post(
        f"/v1/subscribers/{subscriber}/reveal", json={"reason": REASON}, headers=headers
    )
    assert answer.status_code == 403
    assert E164 not in answer.text
    assert count_rows(app, "access_log") == 0


@pytest.mark.parametrize("role", ["auditor", "admin"])
async def test_admin_and_auditor_never_see_a_subscriber_even_masked(client, app, subscriber, role):
    headers = await staff_auth(app, client, role)
    searched = await client.post(
        "/v1/subscribers/search", json={"phone": "09012345678"}, headers=headers
    )
    read = await client.get(f"/v1/subscribers/{subscriber}", headers=headers)
    assert searched.status_code == read.status_code == 403
    assert count_rows(app, "access_log") == 0


async def test_service_clients_and_strangers_see_nothing(client, app, subscriber, auth):
    for headers in (auth, {}, bearer("smsreg_ss_" + "x" * 43)):
        for answer in (
            await client.post("/v1/subscribers/search", json={"phone": E164}, headers=headers),
            await client.get(f"/v1/subscribers/{subscriber}", headers=headers),
            await client.post(
                f"/v1/subscribers/{subscriber}/reveal", json={"reason": REASON}, headers=headers
            ),
        ):
            assert answer.status_code == 401
            assert "5678" not in answer.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": ""}, "reason"),
        ({"reason": "too short"}, "reason"),  # 9 characters
        ({"reason": "x" * 501}, "reason"),
        ({"reason": "  short    "}, "reason"),  # 10 with the padding, 5 without
        ({"reason": "call them on 090-1234-5678 today"}, "reason"),
        ({"reason": "number +819012345678 needed"}, "reason"),
        ({"reason": "number ０９０１２３４５６７８ needed"}, "reason"),
        # Reasons as staff type them: bare, underscored, kanji and full-width with a wide hyphen.
        ({"reason": "9012345679"}, "reason"),
        ({"reason": "please 090_1234_5679 ok"}, "reason"),
        ({"reason": "番号は〇九〇一二三四五六七九です"}, "reason"),
        ({"reason": "番号 ０９０－１２３４－５６７９ の件"}, "reason"),
        ({"reason": "dial (090) 1234.5679 now"}, "reason"),
        ({"reason": "a valid reason\x00with a NUL"}, "reason"),
        ({"reason": "\u3164" * 12}, "reason"),  # Hangul fillers: printable, yet blank
        ({"reason": REASON, "phone": E164}, "phone"),
        ({"reason": 1234567890}, "reason"),
    ],
)
async def test_reveal_bad_input_reveals_and_logs_nothing(client, app, subscriber, body, field):
    headers = await staff_auth(app, client, "privacy_officer")
    answer = await client.post(f"/v1/subscribers/{subscriber}/reveal", json=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert field in {error["field"] for error in answer.json()["errors"]}
    assert "+8190" not in answer.text
    assert count_rows(app, "access_log") == 0
    assert events(app, "staff:subscriber:revealed") == []


async def test_reveal_of_an_unknown_subscriber(client, app):
    headers = await staff_auth(app, client, "privacy_officer")
    answer = await client.post(
        "/v1/subscribers/sub_nobody/reveal", json={"reason": REASON}, headers=headers
    )
    assert answer.status_code == 404
    assert count_rows(app, "access_log") == 0


async def test_refusals_come_before_input_errors(client, app, subscriber):
    """A caller without the role learns nothing about their input: 401/403 first."""
    operator = await staff_auth(app, client, "operator")
    path = f"/v1/subscribers/{subscriber}/reveal"
    assert (await client.post(path, json={}, headers=operator)).status_code == 403
    stranger = bearer("smsreg_ss_" + "y" * 43)
    assert (await client.post(path, json={}, headers=stranger)).status_code == 401
    bad_search = {"phone": "not a number"}
    admin = await staff_auth(app, client, "admin")
    searched = await client.post("/v1/subscribers/search", json=bad_search, headers=admin)
    assert searched.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "phone"),
        ({"phone": ""}, "phone"),
        ({"phone": "x" * 33}, "phone"),
        ({"phone": "not a number"}, "phone"),
        ({"phone": "03-1234-5678"}, "phone"),  # a landline
        ({"phone": "+1 202 555 0100"}, "phone"),  # another region
        ({"phone": E164, "purpose": "coupon_usage"}, "purpose"),
        ({"phone": 9012345678}, "phone"),
    ],
)
async def test_search_bad_input_logs_nothing(client, app, subscriber, body, field):
    headers = await staff_auth(app, client, "operator")
    answer = await client.post("/v1/subscribers/search", json=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert field in {error["field"] for error in answer.json()["errors"]}
    assert count_rows(app, "access_log") == 0


async def test_the_access_log_never_holds_a_number(client, app, carrier, auth, clock):
    others = [
        await verified(client, app, carrier, auth, f"+8180{i:08d}") for i in (11112222, 33334444)
    ]
    subscriber = await verified(client, app, carrier, auth, E164)
    officer = await staff_auth(app, client, "privacy_officer")
    operator = await staff_auth(app, client, "operator")
    for phone in ("090-1234-5678", "+81 80 1111 2222", "080-5555-6666"):
        await client.post("/v1/subscribers/search", json={"phone": phone}, headers=operator)
    for target in (subscriber, *others):
        assert (await client.get(f"/v1/subscribers/{target}", headers=officer)).status_code == 200
        revealed = await client.post(
            f"/v1/subscribers/{target}/reveal", json={"reason": REASON}, headers=officer
        )
        assert revealed.status_code == 200
    # Attempts to smuggle a number in through the reason are refused.
    smuggled = await client.post(
        f"/v1/subscribers/{subscriber}/reveal",
        json={"reason": "for 090 1234 5678 please"},
        headers=officer,
    )
    assert smuggled.status_code == 422
    assert count_rows(app, "access_log") == 9

    text = dump(app, "access_log") + dump(app, "audit_events")
    numbers = [E164, "+818011112222", "+818033334444", "+818055556666"]
    for e164 in numbers:
        national = "0" + e164[3:]
        for form in (e164, e164[1:], national, national[:3] + "-" + national[3:7], e164[-8:]):
            assert form not in text, form
