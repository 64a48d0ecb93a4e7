"""Requests by other channels: recorded by staff with a reason, due in 10 days, queued
until closed (closing one as done carries it out), listed for auditors."""

from __future__ import annotations

import datetime as dt

from app.retention import service as retention
from app.staff.roles import Role
from tests.conftest import count_rows
from tests.consent.helpers import make_key
from tests.staff.helpers import rows, staff_auth, verified

NUMBER = "+819077778888"


async def test_a_phoned_in_erasure_is_queued_then_carried_out(client, app, carrier, clock):
    auth = await make_key(app, ["verifications:write"])
    sid = await verified(client, app, carrier, auth, NUMBER)
    operator = await staff_auth(app, client, Role.OPERATOR)
    auditor = await staff_auth(app, client, Role.AUDITOR)
    body = {"subject_id": sid, "kind": "erase", "channel": "phone",
            "reason": "Caller asked to erase their number; identity checked by SMS"}  # fmt: skip
    created = await client.post("/v1/subject-requests", json=body, headers=operator)
    assert created.status_code == 201, created.text
    request = created.json()
    received = dt.datetime.fromisoformat(request["received_at"])
    assert dt.datetime.fromisoformat(request["due_at"]) - received == dt.timedelta(days=10)
    assert request["status"] == "open" and request["overdue"] is False

    queue = await client.get("/v1/subject-requests?status=open", headers=auditor)
    assert [r["id"] for r in queue.json()["requests"]] == [request["id"]]
    clock.advance(days=10)  # staff sessions end long before: sign in again
    operator = await staff_auth(app, client, Role.OPERATOR, username="operator-2")
    auditor = await staff_auth(app, client, Role.AUDITOR, username="auditor-2")
    queue = await client.get("/v1/subject-requests?status=open", headers=auditor)
    assert queue.json()["requests"][0]["overdue"] is True

    # A note naming the subscriber's own number, however written, is refused before
    # anything is carried out; the refusal, which says the number is registered, is kept
    # as the operator's search and commits nothing else.
    numbered = await client.post(
        f"/v1/subject-requests/{request['id']}/close",
        json={"outcome": "done", "note": "Called back 090x7777x8888, erased"},
        headers=operator,
    )
    assert numbered.status_code == 422 and numbered.json()["errors"][0]["field"] == "note"
    assert rows(app, "SELECT id FROM subscribers") == [{"id": sid}]
    searches = rows(app, "SELECT subscriber_id FROM access_log WHERE action = 'search_number'")
    assert searches == [{"subscriber_id": sid}]
    closed = await client.post(
        f"/v1/subject-requests/{request['id']}/close",
        json={"outcome": "done", "note": "Erased after the call back"},
        headers=operator,
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "done"
    assert closed.json()["receipt"]["erased"]["subscribers"] == 1
    assert not rows(app, "SELECT id FROM subscribers")
    again = await client.post(
        f"/v1/subject-requests/{request['id']}/close",
        json={"outcome": "done", "note": "Erased after the call back"},
        headers=operator,
    )
    assert again.status_code == 409
    assert (await client.get("/v1/subject-requests?status=open", headers=auditor)).json()[
        "requests"
    ] == []


async def test_a_reason_with_a_number_is_refused_and_nothing_is_written(client, app):
    operator = await staff_auth(app, client, Role.OPERATOR)
    body = {"kind": "access", "channel": "letter",
            "reason": "Letter from 090-7777-8888 asking what we hold"}  # fmt: skip
    response = await client.post("/v1/subject-requests", json=body, headers=operator)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "reason"
    assert not rows(app, "SELECT id FROM subject_requests")


async def test_a_reason_or_note_with_a_subscribers_number_however_written_is_refused(
    client, app, carrier
):
    auth = await make_key(app, ["verifications:write"])
    sid = await verified(client, app, carrier, auth, NUMBER)
    operator = await staff_auth(app, client, Role.OPERATOR)
    body = {"subject_id": sid, "kind": "access", "channel": "letter",
            "reason": "Letter from 090/7777,8888 asking what we hold"}  # fmt: skip
    response = await client.post("/v1/subject-requests", json=body, headers=operator)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "reason"
    body["reason"] = "Letter of 2026/10/01, 09:30-10:15 asking what we hold"
    created = await client.post("/v1/subject-requests", json=body, headers=operator)
    assert created.status_code == 201, created.text
    closed = await client.post(
        f"/v1/subject-requests/{created.json()['id']}/close",
        json={"outcome": "done", "note": "Answered by letter to 090、7777。8888"},
        headers=operator,
    )
    assert closed.status_code == 422, closed.text
    assert closed.json()["errors"][0]["field"] == "note"
    assert [row["status"] for row in rows(app, "SELECT status FROM subject_requests")] == ["open"]


async def test_auditors_list_but_do_not_record(client, app):
    auditor = await staff_auth(app, client, Role.AUDITOR)
    body = {"kind": "access", "channel": "letter", "reason": "Letter asking what is held"}
    assert (
        await client.post("/v1/subject-requests", json=body, headers=auditor)
    ).status_code == 403
    assert (await client.get("/v1/subject-requests", headers=auditor)).status_code == 200


async def test_a_request_for_a_subscriber_erased_since_closes_as_done(client, app, carrier):
    """The erasure left nothing that a stop would stop: the request is done, not left open
    (overdue) or refused, and nothing is carried out or logged a second time."""
    auth = await make_key(app, ["verifications:write"])
    sid = await verified(client, app, carrier, auth, NUMBER)
    operator = await staff_auth(app, client, Role.OPERATOR)
    made = {}
    for kind in ("erase", "stop_usage"):
        body = {"subject_id": sid, "kind": kind, "channel": "letter",
                "reason": "Letter received; identity checked by SMS"}  # fmt: skip
        made[kind] = (await client.post("/v1/subject-requests", json=body, headers=operator)).json()
    done = {"outcome": "done", "note": "Carried out"}
    url = "/v1/subject-requests/{}/close"
    erased = await client.post(url.format(made["erase"]["id"]), json=done, headers=operator)
    assert erased.status_code == 200, erased.text
    accesses = count_rows(app, "access_log")
    late = await client.post(url.format(made["stop_usage"]["id"]), json=done, headers=operator)
    assert late.status_code == 200, late.text
    assert late.json()["status"] == "done"
    assert count_rows(app, "access_log") == accesses
    listed = await client.get("/v1/subject-requests?status=open", headers=operator)
    assert listed.json()["requests"] == []


async def test_a_late_answer_is_kept_as_long_as_a_prompt_one(client, app, carrier, clock):
    """The register is the proof that a request was answered: a request closed long after
    it came in was purged that much sooner after its answer."""
    keep = app.state.ctx.settings.subject_request_retention_days
    # Far enough in the database's own past that its triggers let the access log (which
    # the operator's request writes to) be purged when the clock below comes to it.
    clock.set(dt.datetime.now(dt.UTC) - dt.timedelta(days=2 * keep + 400))
    auth = await make_key(app, ["verifications:write"])
    sid = await verified(client, app, carrier, auth, NUMBER)
    operator = await staff_auth(app, client, Role.OPERATOR)
    body = {"subject_id": sid, "kind": "withdraw_delivery", "channel": "letter",
            "reason": "Letter asking for no more coupon messages"}  # fmt: skip
    created = await client.post("/v1/subject-requests", json=body, headers=operator)
    assert created.status_code == 201, created.text
    clock.advance(days=keep - 10)  # answered very late
    operator = await staff_auth(app, client, Role.OPERATOR, username="operator-late")
    closed = await client.post(
        f"/v1/subject-requests/{created.json()['id']}/close",
        json={"outcome": "done", "note": "Answered by letter"},
        headers=operator,
    )
    assert closed.status_code == 200, closed.text
    clock.advance(days=20)  # past its receipt's period, within its answer's
    await retention.purge(app.state.db, app.state.ctx)
    assert count_rows(app, "subject_requests") == 1
    clock.advance(days=keep)
    await retention.purge(app.state.db, app.state.ctx)
    assert count_rows(app, "subject_requests") == 0


async def test_the_register_lists_the_open_queue_first_then_the_latest_answers(
    client, app, carrier, clock
):
    """Closed requests were listed oldest first with the open ones, so past the list's cap
    a long register showed the oldest answers and left out the latest."""
    auth = await make_key(app, ["verifications:write"])
    sid = await verified(client, app, carrier, auth, NUMBER)
    operator = await staff_auth(app, client, Role.OPERATOR)
    made = []
    for n in range(4):
        body = {"subject_id": sid, "kind": "access", "channel": "letter",
                "reason": f"Letter number {n} asking what is held"}  # fmt: skip
        created = await client.post("/v1/subject-requests", json=body, headers=operator)
        assert created.status_code == 201, created.text
        made.append(created.json()["id"])
        clock.advance(minutes=1)
    for request_id in (made[0], made[2]):  # answered in this order
        closed = await client.post(
            f"/v1/subject-requests/{request_id}/close",
            json={"outcome": "done", "note": "Answered by letter"},
            headers=operator,
        )
        assert closed.status_code == 200, closed.text
        clock.advance(minutes=1)
    listed = await client.get("/v1/subject-requests", headers=operator)
    assert [r["id"] for r in listed.json()["requests"]] == [made[1], made[3], made[2], made[0]]
