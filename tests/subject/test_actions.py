"""What a subject sees of their own data, and what they change with a subject session."""

from __future__ import annotations

import asyncio
import datetime as dt

from tests.consent.helpers import make_key
from tests.coupons.helpers import redeem
from tests.fixtures.flows import check, sent_code, start
from tests.ledger.conftest import release, requested
from tests.staff.helpers import execute, rows, verified
from tests.subject.helpers import open_session

NUMBER = "+819055556666"
OPT_IN = {"purpose": "coupon_delivery", "action": "opt_in", "source": "web",
          "policy_version": "2026-11"}  # fmt: skip


async def test_the_subject_sees_purposes_consents_redemptions_and_disclosures(
    client, app, carrier, clock
):
    auth = await make_key(app, ["verifications:write", "consents:write", "coupons:write"])
    sid = await verified(client, app, carrier, auth, NUMBER, "coupon_delivery")
    assert (await client.post(f"/v1/subscribers/{sid}/consents", json=OPT_IN, headers=auth)
            ).status_code == 201  # fmt: skip
    clock.advance(minutes=1)
    started = await start(client, auth, phone=NUMBER, purpose="coupon_usage")
    checked = await check(client, auth, started.json()["id"], await sent_code(app, carrier, NUMBER))
    assert checked.status_code == 200
    redeemed = await redeem(client, auth, "spring-10", verification_id=started.json()["id"])
    assert redeemed.status_code == 201, redeemed.text
    await release(app, [sid])
    clock.advance(minutes=1)
    headers = await open_session(client, app, carrier, NUMBER)

    body = (await client.get("/v1/subject/data", headers=headers)).json()
    assert {p["purpose"] for p in body["purposes"]} == {"coupon_delivery", "coupon_usage"}
    assert [(c["purpose"], c["action"]) for c in body["consent_history"]] == [
        ("coupon_delivery", "opt_in")
    ]
    assert body["consent_history_total"] == 1  # the list holds the newest 200 only
    assert [(r["coupon_id"], r["count"]) for r in body["redemptions"]] == [("spring-10", 1)]
    assert body["provision_stopped_at"] is None

    records = await client.get("/v1/subject/disclosures", headers=headers)
    assert records.status_code == 200
    [record] = records.json()["records"]
    assert record["recipient"]["organisation"] == "Shibuya Police Station"
    assert record["legal_basis"] == "investigation_compelled"
    assert record["data_items"] == ["phone_number", "subscriber_id"]
    assert record["request_reference"] is None  # an inquiry's reference is not shown


async def test_every_redemption_is_counted(client, app, carrier, clock):
    """The per-coupon counts were worked out from the newest 200 redemptions only."""
    auth = await make_key(app, ["verifications:write", "coupons:write"])
    sid = await verified(client, app, carrier, auth, NUMBER)
    redeemed = await redeem(client, auth, "spring-10", subscriber_id=sid)
    assert redeemed.status_code == 201, redeemed.text
    client_id = rows(app, "SELECT client_id FROM coupon_redemptions")[0]["client_id"]
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for n in range(250):  # a coupon allowed often, used before the one above
        execute(
            app,
            "INSERT INTO coupon_redemptions (id, coupon_id, subscriber_id, seq, client_id, "
            "redeemed_at) VALUES (:id, 'daily', :sid, :seq, :client, :at)",
            id=f"red_bulk{n:04d}", sid=sid, seq=n + 1, client=client_id,
            at=at + dt.timedelta(hours=n) if not app.state.db.sqlite
            else (at + dt.timedelta(hours=n)).strftime("%Y-%m-%d %H:%M:%S.%f"),
        )  # fmt: skip
    headers = await open_session(client, app, carrier, NUMBER)
    body = (await client.get("/v1/subject/data", headers=headers)).json()
    assert [(r["coupon_id"], r["count"]) for r in body["redemptions"]] == [
        ("daily", 250),
        ("spring-10", 1),
    ]
    daily = body["redemptions"][0]
    assert daily["first_at"].startswith("2026-01-01T00:00")
    assert daily["last_at"].startswith("2026-01-11T09:00")
    assert (body["consent_history_total"], body["deliveries_total"]) == (0, 0)


async def test_withdrawals_at_once_record_one_opt_out(client, app, carrier, clock):
    """Sent at once (PostgreSQL runs them together), each withdrawal read the opt-in as
    live before taking the subscriber's lock: six opt-outs recorded, six answers that
    said they changed something."""
    auth = await make_key(app, ["verifications:write", "consents:write"])
    sid = await verified(client, app, carrier, auth, NUMBER, "coupon_delivery")
    await client.post(f"/v1/subscribers/{sid}/consents", json=OPT_IN, headers=auth)
    clock.advance(minutes=1)
    headers = await open_session(client, app, carrier, NUMBER)
    answers = await asyncio.gather(
        *(client.post("/v1/subject/delivery-consent/withdraw", headers=headers) for _ in range(6))
    )
    assert [a.status_code for a in answers] == [200] * 6
    assert sorted(a.json()["changed"] for a in answers) == [False] * 5 + [True]
    opt_outs = "SELECT count(*) AS n FROM consent_events WHERE action = 'opt_out'"
    assert rows(app, opt_outs) == [{"n": 1}]


async def test_withdraw_stop_and_resume_are_done_and_registered(client, app, carrier, clock):
    auth = await make_key(app, ["verifications:write", "consents:write", "coupons:write"])
    sid = await verified(client, app, carrier, auth, NUMBER, "coupon_delivery")
    await client.post(f"/v1/subscribers/{sid}/consents", json=OPT_IN, headers=auth)
    clock.advance(minutes=1)
    await verified(client, app, carrier, auth, NUMBER, "coupon_usage")
    clock.advance(minutes=1)
    headers = await open_session(client, app, carrier, NUMBER)

    withdrawn = await client.post("/v1/subject/delivery-consent/withdraw", headers=headers)
    assert withdrawn.status_code == 200 and withdrawn.json()["changed"] is True
    state = rows(app, "SELECT status FROM consents WHERE subscriber_id = :s", s=sid)
    assert state == [{"status": "opted_out"}]
    again = await client.post("/v1/subject/delivery-consent/withdraw", headers=headers)
    assert again.json()["changed"] is False

    stopped = await client.post("/v1/subject/coupon-usage/stop", headers=headers)
    assert stopped.json()["changed"] is True
    assert rows(app, "SELECT purpose FROM subscriber_purposes WHERE subscriber_id = :s",
                s=sid) == [{"purpose": "coupon_delivery"}]  # fmt: skip
    # Stopped means stopped: a coupon redemption on the number is refused now.
    refused = await redeem(client, auth, "spring-10", subscriber_id=sid)
    assert refused.status_code == 409, refused.text

    for action, stopped_now in (("stop", True), ("resume", False)):
        response = await client.post(
            "/v1/subject/third-party-provision", json={"action": action}, headers=headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["changed"] is True
        data = (await client.get("/v1/subject/data", headers=headers)).json()
        assert (data["provision_stopped_at"] is not None) is stopped_now

    kinds = [r["kind"] for r in rows(app, "SELECT kind FROM subject_requests ORDER BY received_at")]
    assert sorted(kinds) == sorted(
        ["withdraw_delivery", "withdraw_delivery", "stop_usage", "stop_provision",
         "resume_provision"]
    )  # fmt: skip
    assert {r["status"] for r in rows(app, "SELECT status FROM subject_requests")} == {"done"}


async def test_bad_input_is_a_problem_naming_the_field(client, app, carrier):
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    headers = await open_session(client, app, carrier, NUMBER)
    response = await client.post(
        "/v1/subject/third-party-provision", json={"action": "pause"}, headers=headers
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "action"


async def test_each_purpose_shows_when_it_began_and_when_it_was_last_verified(
    client, app, carrier, clock
):
    auth = await make_key(app, ["verifications:write"])
    began = clock.now()
    await verified(client, app, carrier, auth, NUMBER, "coupon_usage")
    clock.advance(days=3)
    again = clock.now()
    started = await start(client, auth, phone=NUMBER, purpose="coupon_usage")
    checked = await check(client, auth, started.json()["id"], await sent_code(app, carrier, NUMBER))
    assert checked.status_code == 200
    headers = await open_session(client, app, carrier, NUMBER)

    (held,) = (await client.get("/v1/subject/data", headers=headers)).json()["purposes"]
    assert held["purpose"] == "coupon_usage"
    assert dt.datetime.fromisoformat(held["since"]) == began
    assert dt.datetime.fromisoformat(held["verified_at"]) >= again


async def test_the_erasure_receipt_counts_every_kept_row_that_names_the_subject(
    client, app, carrier, clock
):
    auth = await make_key(app, ["verifications:write"])
    sid = await verified(client, app, carrier, auth, NUMBER)
    await release(app, [sid])  # a request released: an entry names the subject
    await requested(app, [sid])  # and one still waiting
    headers = await open_session(client, app, carrier, NUMBER)
    stop = {"action": "stop"}
    assert (await client.post("/v1/subject/third-party-provision", json=stop, headers=headers)
            ).status_code == 200  # fmt: skip
    erased = await client.post("/v1/subject/erasure", json={"confirm": True}, headers=headers)
    assert erased.status_code == 200, erased.text
    kept = {item["what"]: item["count"] for item in erased.json()["kept"]}
    named = {
        "ledger_entry_subjects": rows(app, "SELECT count(*) AS n FROM ledger_entry_subjects "
                                      "WHERE subject_id = :s", s=sid),
        "subject_requests": rows(app, "SELECT count(*) AS n FROM subject_requests "
                                 "WHERE subscriber_id = :s", s=sid),
        "access_log": rows(app, "SELECT count(*) AS n FROM access_log WHERE subscriber_id = :s",
                           s=sid),
        # The erasure's own event too (it was recorded after the count was read).
        "audit_events": rows(app, "SELECT count(*) AS n FROM audit_events WHERE subject = :s",
                             s=sid),
    }  # fmt: skip
    assert {name: found[0]["n"] for name, found in named.items()} == {
        name: kept[name] for name in named
    }
    assert kept["subject_requests"] == 2  # the stop, and this erasure
    assert kept["disclosure_requests"] == 2 and kept["ledger_entry_subjects"] == 1
