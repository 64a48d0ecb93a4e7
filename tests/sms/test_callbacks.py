"""Twilio status callbacks: only correctly signed ones are believed, and they update delivery."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import anyio.from_thread
import httpx
import pytest
import sqlalchemy as sa
from twilio.request_validator import RequestValidator

from app.sms.base import SendError, SendResult
from tests.conftest import sync_engine
from tests.fixtures.fakes import FakeCarrier
from tests.fixtures.flows import start
from tests.staff.helpers import rows

TOKEN = "twilio-test-token-0123456789abcdef"
BASE = "https://sms.example.co.jp"
URL = BASE + "/v1/sms/twilio/status"


@pytest.fixture
def settings_overrides():
    return {"twilio_auth_token": TOKEN, "public_base_url": BASE}


class SidCarrier:
    """A carrier that answers with a known message sid."""

    name, blocking = "twilio", False

    def send(self, *, to: str, body: str, **_: object) -> SendResult:
        return SendResult(carrier="twilio", message_id="SM" + "a" * 32, status="queued")


@pytest.fixture
def carrier():
    return SidCarrier()


def form(status: str, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": "SM" + "a" * 32,
        "SmsSid": "SM" + "a" * 32,
        "AccountSid": "AC" + "b" * 32,
        "MessageStatus": status,
        "SmsStatus": status,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def signed(params: dict[str, str], *, token: str = TOKEN, url: str = URL) -> dict[str, str]:
    return {
        "X-Twilio-Signature": RequestValidator(token).compute_signature(url, params),
        "Content-Type": "application/x-www-form-urlencoded",
    }


async def post(client: httpx.AsyncClient, params: dict[str, str], headers: dict[str, str]):
    return await client.post("/v1/sms/twilio/status", content=urlencode(params), headers=headers)


async def delivery(client, auth, verification_id):
    return (await client.get(f"/v1/verifications/{verification_id}", headers=auth)).json()[
        "delivery"
    ]


async def test_signed_callbacks_update_the_delivery_state(client, app, auth):
    verification_id = (await start(client, auth)).json()["id"]
    await app.state.outbox.drain()
    assert (await delivery(client, auth, verification_id))["state"] == "sent"  # Twilio: queued
    assert (await post(client, form("delivered"), signed(form("delivered")))).status_code == 204
    assert (await delivery(client, auth, verification_id))["state"] == "delivered"
    # A late, lower state does not go backwards.
    assert (await post(client, form("sent"), signed(form("sent")))).status_code == 204
    assert (await delivery(client, auth, verification_id))["state"] == "delivered"


async def test_failure_records_the_carrier_error_code(client, app, auth):
    verification_id = (await start(client, auth)).json()["id"]
    await app.state.outbox.drain()
    params = form("undelivered", ErrorCode="30003")
    assert (await post(client, params, signed(params))).status_code == 204
    assert await delivery(client, auth, verification_id) == {
        "state": "undelivered",
        "error_code": "30003",
        "sent_at": (await delivery(client, auth, verification_id))["sent_at"],
    }


@pytest.mark.parametrize(
    "headers",
    [
        signed(form("delivered"), token="wrong-token"),  # wrong token
        {"Content-Type": "application/x-www-form-urlencoded"},  # no header
        signed(form("delivered"), url="https://attacker.example/v1/sms/twilio/status"),  # other URL
    ],
    ids=["wrong-token", "no-header", "other-url"],
)
async def test_bad_signatures_are_refused_and_change_nothing(client, app, auth, headers):
    verification_id = (await start(client, auth)).json()["id"]
    await app.state.outbox.drain()
    answer = await post(client, form("delivered"), headers)
    assert answer.status_code == 403
    assert (await delivery(client, auth, verification_id))["state"] == "sent"  # Twilio: queued


SECONDARY = "twilio-secondary-token-fedcba9876543210"


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "twilio_auth_token": TOKEN,
            "twilio_secondary_auth_token": SECONDARY,
            "public_base_url": BASE,
        }
    ],
)
async def test_during_a_token_rotation_either_token_signs(client, app, auth):
    """Twilio signs with whichever token is its primary: before the promotion the old one
    (set as the secondary here), after it the new one. Any other token is refused."""
    verification_id = (await start(client, auth)).json()["id"]
    await app.state.outbox.drain()
    refused = await post(client, form("delivered"), signed(form("delivered"), token="wrong-token"))
    assert refused.status_code == 403
    old = await post(client, form("sent"), signed(form("sent"), token=SECONDARY))
    assert old.status_code == 204
    new = await post(client, form("delivered"), signed(form("delivered"), token=TOKEN))
    assert new.status_code == 204
    assert (await delivery(client, auth, verification_id))["state"] == "delivered"


async def test_the_secondary_token_is_not_believed_unless_set(client, app, auth):
    verification_id = (await start(client, auth)).json()["id"]
    await app.state.outbox.drain()
    answer = await post(client, form("delivered"), signed(form("delivered"), token=SECONDARY))
    assert answer.status_code == 403
    assert (await delivery(client, auth, verification_id))["state"] == "sent"


async def test_tampered_form_is_refused(client, app, auth):
    verification_id = (await start(client, auth)).json()["id"]
    await app.state.outbox.drain()
    headers = signed(form("failed"))
    answer = await post(client, form("delivered"), headers)  # signed "failed", sent "delivered"
    assert answer.status_code == 403
    assert (await delivery(client, auth, verification_id))["state"] == "sent"  # Twilio: queued


async def test_unknown_message_is_acknowledged(client):
    params = {**form("delivered"), "MessageSid": "SM" + "c" * 32}
    assert (await post(client, params, signed(params))).status_code == 204


async def test_a_final_state_is_final(client, app, auth):
    """delivered -> failed -> delivered used to flip the stored state each time."""
    verification_id = (await start(client, auth)).json()["id"]
    await app.state.outbox.drain()
    for status in ("delivered", "failed", "undelivered", "sent"):
        assert (await post(client, form(status), signed(form(status)))).status_code == 204
        assert (await delivery(client, auth, verification_id))["state"] == "delivered"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ErrorCode", "3" * 21),  # longer than the column: a 500 on PostgreSQL before
        ("ErrorCode", "30003; DROP"),
        ("MessageStatus", "x" * 25),
        ("MessageSid", "SM" + "a" * 200),
    ],
)
async def test_every_field_is_checked_and_a_bad_one_changes_nothing(
    client, app, auth, field, value
):
    verification_id = (await start(client, auth)).json()["id"]
    await app.state.outbox.drain()
    params = {**form("undelivered"), field: value}
    if field == "MessageSid":
        params["SmsSid"] = value
    if field == "MessageStatus":
        params["SmsStatus"] = value
    answer = await post(client, params, signed(params))
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == field
    assert (await delivery(client, auth, verification_id))["state"] == "sent"  # Twilio: queued


def _referenced(app, verification_id: str) -> str:
    return rows(
        app, "SELECT id FROM outbox_messages WHERE verification_id = :v", v=verification_id
    )[0]["id"]


async def post_for(client: httpx.AsyncClient, message_id: str, params: dict[str, str]):
    """A callback to the URL the sender gave for one message (``?m=``), signed over it."""
    url = f"{URL}?{urlencode({'m': message_id})}"
    return await client.post(
        f"/v1/sms/twilio/status?{urlencode({'m': message_id})}",
        content=urlencode(params),
        headers=signed(params, url=url),
    )


async def test_partially_delivered_is_a_final_state(client, app, auth):
    verification_id = (await start(client, auth)).json()["id"]
    await app.state.outbox.drain()
    params = form("partially_delivered")
    assert (await post(client, params, signed(params))).status_code == 204
    assert (await delivery(client, auth, verification_id))["state"] == "delivered"
    assert (await post(client, form("failed"), signed(form("failed")))).status_code == 204
    assert (await delivery(client, auth, verification_id))["state"] == "delivered"


class ReportsBeforeAnswering:
    """A carrier whose status report reaches the service before its answer to the send
    does (a fast failure; Twilio posts callbacks as soon as the state changes)."""

    name, blocking = "twilio", True

    def __init__(self) -> None:
        self.client: httpx.AsyncClient | None = None

    def send(self, *, to: str, body: str, reference: str | None = None, **_: object):
        assert self.client is not None and reference is not None
        params = form("failed", ErrorCode="30003")
        answer = anyio.from_thread.run(post_for, self.client, reference, params)
        assert answer.status_code == 204
        return SendResult(carrier="twilio", message_id="SM" + "a" * 32, status="queued")


async def test_a_report_before_the_send_is_recorded_is_kept(client, app, auth):
    """The callback names the message itself: a "failed" that came before the worker
    recorded Twilio's answer ("queued") is neither lost nor overwritten by it."""
    sender = ReportsBeforeAnswering()
    sender.client = client
    app.state.outbox.sender = sender
    verification_id = (await start(client, auth)).json()["id"]
    await app.state.outbox.drain()
    assert await delivery(client, auth, verification_id) == {
        "state": "failed",
        "error_code": "30003",
        "sent_at": (await delivery(client, auth, verification_id))["sent_at"],
    }
    assert rows(app, "SELECT carrier_message_id FROM outbox_messages") == [
        {"carrier_message_id": "SM" + "a" * 32}
    ]


async def test_a_report_settles_a_message_whose_answer_was_lost(client, app, auth):
    """A send whose answer was lost is ``unknown`` and never sent again; Twilio's report,
    naming the message, says what became of it."""
    app.state.outbox.sender = FakeCarrier(
        name="twilio", fail_with=SendError("no answer", code="no_answer", permanent=False,
                                           unknown=True),
    )  # fmt: skip
    verification_id = (await start(client, auth)).json()["id"]
    await app.state.outbox.drain()
    lost = await delivery(client, auth, verification_id)
    assert (lost["state"], lost["error_code"]) == ("unknown", "no_answer")
    message_id = _referenced(app, verification_id)
    answer = await post_for(client, message_id, form("sending"))
    assert answer.status_code == 204
    # The carrier has it: the lost answer's code no longer stands beside its state (it
    # read as a failure to a client that keys on error_code).
    found = await delivery(client, auth, verification_id)
    assert (found["state"], found["error_code"]) == ("sent", None)
    # A report naming the message but another of Twilio's, once one is recorded, is not
    # believed for it.
    other = {**form("failed"), "MessageSid": "SM" + "d" * 32, "SmsSid": "SM" + "d" * 32}
    assert (await post_for(client, message_id, other)).status_code == 204
    assert (await delivery(client, auth, verification_id))["state"] == "sent"
    assert (await post_for(client, message_id, form("delivered"))).status_code == 204
    assert (await delivery(client, auth, verification_id))["state"] == "delivered"


async def test_a_report_racing_a_later_one_does_not_undo_it(client, app, auth):
    """Two reports read the same state at once; the later state commits first. The
    earlier one's update, let through after it, must not move the state back (PostgreSQL
    re-checks the statement's guard on the row the first one committed)."""
    engine = sync_engine(app)
    if engine.dialect.name != "postgresql":
        pytest.skip("units run one at a time on SQLite")
    await start(client, auth)
    await app.state.outbox.drain()
    (message,) = rows(app, "SELECT id, delivery_status FROM outbox_messages")
    assert message["delivery_status"] == "queued"
    with engine.connect() as conn:
        conn.execute(
            sa.text("SELECT 1 FROM outbox_messages WHERE id = :m FOR UPDATE"), {"m": message["id"]}
        )
        sending = asyncio.create_task(post(client, form("sending"), signed(form("sending"))))
        await asyncio.sleep(0.5)  # it has read "queued" and waits for the row
        assert not sending.done()
        conn.execute(
            sa.text("UPDATE outbox_messages SET delivery_status = 'sent' WHERE id = :m"),
            {"m": message["id"]},
        )
        conn.commit()
    assert (await sending).status_code == 204
    assert rows(app, "SELECT delivery_status FROM outbox_messages") == [{"delivery_status": "sent"}]
