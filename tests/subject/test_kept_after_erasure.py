"""What an erasure keeps for a while, then lets go: the number's coupon tallies (so that
erasing and verifying again does not renew a coupon's limit per number), and the consent
history the law asks a sender to keep for a month after its last message."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from app.retention import service as retention
from tests.consent.helpers import make_key, opted_in
from tests.fixtures.flows import claim, send_claimed, sent_code
from tests.staff.helpers import rows, verified
from tests.subject.helpers import open_session, send_code

NUMBER = "+819087651111"
OTHER = "+819087652222"


async def _erase(client: httpx.AsyncClient, app: FastAPI, carrier: Any, e164: str) -> Any:
    """The person's own erasure, by SMS as on /my/; the receipt."""
    headers = await open_session(client, app, carrier, e164)
    answer = await client.post("/v1/subject/erasure", json={"confirm": True}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _kept(receipt: dict[str, Any]) -> dict[str, int]:
    return {item["what"]: item["count"] for item in receipt["kept"]}


async def _redeem(client: httpx.AsyncClient, auth: dict[str, str], subscriber_id: str) -> Any:
    return await client.post(
        "/v1/coupons/spring/redemptions", json={"subscriber_id": subscriber_id}, headers=auth
    )


async def test_erasing_and_verifying_again_does_not_renew_a_coupons_limit(
    client, app, carrier, clock
):
    auth = await make_key(app, ["verifications:write", "coupons:write"])
    first = await verified(client, app, carrier, auth, NUMBER)
    other = await verified(client, app, carrier, auth, OTHER)
    assert (await _redeem(client, auth, first)).status_code == 201
    assert (await _redeem(client, auth, other)).status_code == 201
    receipt = await _erase(client, app, carrier, NUMBER)
    assert receipt["erased"]["coupon_redemptions"] == 1
    assert _kept(receipt)["erased_redemptions"] == 1  # the receipt says what stays, and why
    clock.advance(minutes=1)
    again = await verified(client, app, carrier, auth, NUMBER)
    assert again != first  # a new subscriber, unlinked to the old id...
    refused = await _redeem(client, auth, again)
    # ...whose number has used its one redemption of the coupon all the same...
    assert refused.status_code == 409, refused.text
    # ...as the list of its redemptions says.
    listed = await client.get(f"/v1/coupons/spring/redemptions?subscriber_id={again}", headers=auth)
    assert listed.status_code == 200, listed.text
    # Counted though not listed (the earlier subscriber's may have been another person's):
    # remaining 0 beside an empty list said nothing of why.
    body = listed.json()
    assert (body["redemptions"], body["counted"], body["remaining"]) == ([], 1, 0)
    assert refused.json()["type"].endswith("/coupon-already-redeemed")
    # A second erasure adds to the same tally: the limit holds however often it is done.
    await _erase(client, app, carrier, NUMBER)
    stored = rows(app, "SELECT coupon_id, redeemed FROM erased_redemptions")
    assert stored == [{"coupon_id": "spring", "redeemed": 1}]
    # The tally is kept COUPON_LIMIT_MEMORY_DAYS after the last redemption, then purged,
    # and the number starts afresh. Another number was never limited by it.
    clock.advance(days=app.state.ctx.settings.coupon_limit_memory_days, minutes=1)
    report = await retention.purge(app.state.db, app.state.ctx)
    assert report.deleted["erased_redemptions"] == 1
    auth = await make_key(app, ["verifications:write", "coupons:write"])  # the first expired
    fresh = await verified(client, app, carrier, auth, NUMBER)
    assert (await _redeem(client, auth, fresh)).status_code == 201


async def test_the_consent_history_is_kept_a_month_after_the_last_campaign_message(
    client, app, carrier, clock
):
    auth = await make_key(app, ["verifications:write", "consents:write", "deliveries:write"])
    messaged = await verified(client, app, carrier, auth, NUMBER, "coupon_delivery")
    await opted_in(client, auth, messaged)
    body = {"campaign_id": "spring", "messages": {"ja": "春のクーポン"}, "default_locale": "ja"}
    assert (await client.post("/v1/deliveries", json=body, headers=auth)).status_code == 201
    history = rows(app, "SELECT id, action, policy_version FROM consent_events ORDER BY id")
    clock.advance(days=3)
    receipt = await _erase(client, app, carrier, NUMBER)
    assert receipt["erased"]["consent_events"] == len(history) == 1
    assert _kept(receipt)["erased_consent_events"] == 1
    kept = rows(app, "SELECT id, action, policy_version FROM erased_consent_events")
    assert kept == history and not rows(app, "SELECT id FROM consent_events")
    # A month (and the message's time to be sent) after the message was queued: purged.
    ttl = app.state.ctx.settings.delivery_ttl_hours
    clock.advance(days=28, hours=ttl - 1)
    assert (await retention.purge(app.state.db, app.state.ctx)).deleted.get(
        "erased_consent_events", 0
    ) == 0
    clock.advance(hours=2)
    report = await retention.purge(app.state.db, app.state.ctx)
    assert report.deleted["erased_consent_events"] == 1
    assert not rows(app, "SELECT id FROM erased_consent_events")


async def test_no_consent_history_is_kept_without_a_campaign_message_in_the_last_month(
    client, app, carrier, clock
):
    auth = await make_key(app, ["verifications:write", "consents:write", "deliveries:write"])
    messaged = await verified(client, app, carrier, auth, NUMBER, "coupon_delivery")
    never = await verified(client, app, carrier, auth, OTHER, "coupon_delivery")
    await opted_in(client, auth, messaged)
    body = {"campaign_id": "spring", "messages": {"ja": "春のクーポン"}, "default_locale": "ja"}
    assert (await client.post("/v1/deliveries", json=body, headers=auth)).status_code == 201
    await opted_in(client, auth, never)  # after the campaign: never sent one
    clock.advance(days=40)
    for number in (NUMBER, OTHER):
        receipt = await _erase(client, app, carrier, number)
        assert receipt["erased"]["consent_events"] == 1
        assert _kept(receipt)["erased_consent_events"] == 0
    assert not rows(app, "SELECT id FROM erased_consent_events")


async def test_two_erasures_keep_their_consent_histories_apart(client, app, carrier, clock):
    """SQLite gives a deleted row's id to the next row: the second subscriber's consent
    event may have the id the first's had, and both are kept aside, each its own."""
    auth = await make_key(app, ["verifications:write", "consents:write", "deliveries:write"])
    for n, number in enumerate((NUMBER, OTHER)):
        subscriber = await verified(client, app, carrier, auth, number, "coupon_delivery")
        await opted_in(client, auth, subscriber)
        body = {"campaign_id": f"c{n}", "messages": {"ja": "クーポン"}, "default_locale": "ja"}
        assert (await client.post("/v1/deliveries", json=body, headers=auth)).status_code == 201
        await send_claimed(app, carrier, await claim(app, 10))  # sent before the next code
        receipt = await _erase(client, app, carrier, number)
        assert _kept(receipt)["erased_consent_events"] == 1
        clock.advance(minutes=1)
    assert len(rows(app, "SELECT subscriber_id, id FROM erased_consent_events")) == 2


async def test_moving_away_and_back_then_erasing_counts_once_and_names_no_one(
    client, app, carrier, clock
):
    """A subscriber moves to another number and back, then is erased: its number's tally
    holds its redemption once, the number it visited holds it too, and no tally names
    the erased subscriber."""
    auth = await make_key(app, ["verifications:write", "coupons:write"])
    sid = await verified(client, app, carrier, auth, NUMBER)
    assert (await _redeem(client, auth, sid)).status_code == 201
    for there, here in ((OTHER, NUMBER), (NUMBER, OTHER)):
        clock.advance(minutes=1)
        headers = await open_session(client, app, carrier, here)
        verification_id = await send_code(
            client, there, path="/v1/subject/correction/verifications", headers=headers
        )
        moved = await client.post(
            "/v1/subject/correction",
            json={"verification_id": verification_id, "code": await sent_code(app, carrier, there)},
            headers=headers,
        )
        assert moved.status_code == 200, moved.text
    clock.advance(minutes=1)
    await _erase(client, app, carrier, NUMBER)
    tallies = rows(app, "SELECT phone_index, moved_by, redeemed FROM erased_redemptions")
    assert sorted((t["moved_by"], t["redeemed"]) for t in tallies) == [("", 1), ("", 1)]
    assert len({t["phone_index"] for t in tallies}) == 2  # NUMBER's and OTHER's


async def test_the_next_holder_of_a_number_learns_nothing_of_the_coupons_used_with_it(
    client, app, carrier, clock
):
    """Carriers give numbers to new people. The tallies an erasure keeps under the number
    limit its coupons all the same, but whoever proves the number next is shown none of
    them: they may be the coupons, counts and days of someone else."""
    auth = await make_key(app, ["verifications:write", "coupons:write"])
    first = await verified(client, app, carrier, auth, NUMBER)
    assert (await _redeem(client, auth, first)).status_code == 201
    await _erase(client, app, carrier, NUMBER)
    clock.advance(days=120)  # the number, given to another person
    verification_id = await send_code(client, NUMBER)
    code = await sent_code(app, carrier, NUMBER)
    answer = await client.post(
        "/v1/subject/sessions", json={"verification_id": verification_id, "code": code}
    )
    assert answer.status_code == 404, answer.text
    assert answer.json()["type"].endswith("/subject-nothing-held")
    assert "spring" not in answer.text and "redeem" not in answer.text
    auth = await make_key(app, ["verifications:write", "coupons:write"])  # the first expired
    second = await verified(client, app, carrier, auth, NUMBER)
    headers = await open_session(client, app, carrier, NUMBER)
    data = await client.get("/v1/subject/data", headers=headers)
    assert data.json()["redemptions"] == [] and "spring" not in data.text
    # The limit holds all the same.
    assert (await _redeem(client, auth, second)).status_code == 409
