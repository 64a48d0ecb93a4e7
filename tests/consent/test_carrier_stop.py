"""A STOP the carrier saw and this service did not: Twilio refuses a message with error
21610 (its recipient replied STOP and Twilio's Advanced Opt-Out now blocks the number),
at the send or later in a signed status callback. The recipient's standing opt-in to
coupon delivery is withdrawn, on record as the carrier's word; nothing else changes."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from app.sms.base import SendError
from tests.consent.helpers import counts, jp, opted_in, register, rows

TOKEN = "twilio-test-token-0123456789abcdef"
BASE = "https://sms.example.co.jp"
STATUS_URL = BASE + "/v1/sms/twilio/status"
NUMBER = jp(31)
UNSUBSCRIBED = SendError("unsubscribed recipient", code="21610", permanent=True, opted_out=True)


@pytest.fixture
def settings_overrides():
    return {"twilio_auth_token": TOKEN, "public_base_url": BASE}


def state(app, subscriber_id: str) -> str:
    found = rows(app, "SELECT status FROM consents WHERE subscriber_id = :s", s=subscriber_id)
    return found[0][0] if found else "none"


def opt_outs(app) -> list[tuple[str, str, str]]:
    return [
        tuple(row)
        for row in rows(
            app,
            "SELECT subscriber_id, source, actor FROM consent_events "
            "WHERE action = 'opt_out' ORDER BY id",
        )
    ]


async def start(client, auth, number: str = NUMBER) -> None:
    answer = await client.post(
        "/v1/verifications",
        json={"phone": number, "purpose": "coupon_delivery", "locale": "ja"},
        headers=auth,
    )
    assert answer.status_code == 201, answer.text


async def report(client, sid: str, *, status: str, code: str | None, to: str = NUMBER):
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "b" * 32,
        "MessageStatus": status,
        "SmsStatus": status,
        "From": "+15005550006",
        "To": to,
        "ApiVersion": "2010-04-01",
    }
    if code is not None:
        params["ErrorCode"] = code
    headers = {
        "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(STATUS_URL, params),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    answer = await client.post("/v1/sms/twilio/status", content=urlencode(params), headers=headers)
    assert answer.status_code == 204, answer.text


@pytest.fixture
async def subscriber(client, app, full_auth) -> str:
    subscriber_id = await register(app, NUMBER)
    await opted_in(client, full_auth, subscriber_id)
    return subscriber_id


async def test_a_refused_send_withdraws_the_opt_in(client, app, carrier, full_auth, subscriber):
    carrier.refusing[NUMBER] = UNSUBSCRIBED
    await start(client, full_auth)
    await app.state.outbox.drain()
    assert carrier.sent == []
    assert state(app, subscriber) == "opted_out"
    assert opt_outs(app) == [(subscriber, "carrier", "sms:twilio")]
    [event] = rows(
        app,
        "SELECT details FROM audit_events WHERE tag = 'consent:opted_out' AND subject = :s",
        s=subscriber,
    )
    assert "carrier" in str(event[0]) and NUMBER not in str(event[0])

    # Refused again: the opt-out is on record once.
    await start(client, full_auth)
    await app.state.outbox.drain()
    assert opt_outs(app) == [(subscriber, "carrier", "sms:twilio")]


async def test_other_refusals_change_no_consent(client, app, carrier, full_auth, subscriber):
    for code in ("21211", "21614", "30003"):
        carrier.refusing[NUMBER] = SendError("refused", code=code, permanent=True)
        await start(client, full_auth)
        await app.state.outbox.drain()
    assert state(app, subscriber) == "opted_in"
    assert opt_outs(app) == []


async def test_no_opt_out_is_made_up_for_who_never_opted_in(client, app, carrier, full_auth):
    """Unlike a STOP reply seen here (an opt-out on record whatever came before), the
    carrier's refusal only ends an opt-in that stands."""
    subscriber_id = await register(app, NUMBER)
    carrier.refusing[NUMBER] = UNSUBSCRIBED
    carrier.refusing[jp(32)] = UNSUBSCRIBED  # not registered at all
    before = counts(app)
    await start(client, full_auth)
    await start(client, full_auth, jp(32))
    await app.state.outbox.drain()
    assert state(app, subscriber_id) == "none"
    assert counts(app)["consent_events"] == before["consent_events"]


async def test_a_status_callback_with_21610_withdraws_the_opt_in(
    client, app, carrier, full_auth, subscriber
):
    """A Messaging Service accepts the message and reports the refusal later."""
    await start(client, full_auth)
    await app.state.outbox.drain()
    [sid] = [r[0] for r in rows(app, "SELECT carrier_message_id FROM outbox_messages")]

    await report(client, sid, status="sent", code=None)
    await report(client, "SM" + "0" * 31 + "9", status="failed", code="21610")  # not ours
    assert state(app, subscriber) == "opted_in"
    await report(client, sid, status="failed", code="21610")
    assert state(app, subscriber) == "opted_out"
    assert opt_outs(app) == [(subscriber, "carrier", "sms:twilio")]

    # The person opts in again (texting START to Twilio, then on the frontend). A repeat
    # of the report, Twilio's retry or a replay of the signed request, changes nothing.
    await opted_in(client, full_auth, subscriber)
    await report(client, sid, status="failed", code="21610")
    assert state(app, subscriber) == "opted_in"
    assert opt_outs(app) == [(subscriber, "carrier", "sms:twilio")]


@pytest.mark.parametrize(("first", "code"), [("delivered", None), ("failed", "30003")])
async def test_a_21610_after_another_final_state_withdraws_nothing(
    client, app, carrier, full_auth, subscriber, first, code
):
    await start(client, full_auth)
    await app.state.outbox.drain()
    [sid] = [r[0] for r in rows(app, "SELECT carrier_message_id FROM outbox_messages")]
    await report(client, sid, status=first, code=code)
    await report(client, sid, status="failed", code="21610")  # late, out of order
    assert state(app, subscriber) == "opted_in"
    assert opt_outs(app) == []
