"""Inbound STOP through Twilio's signed webhook: the sender is opted out, nothing else."""

from __future__ import annotations

import logging
import unicodedata
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.consent.helpers import counts, jp, opted_in, register, rows

TOKEN = "twilio-test-token-0123456789abcdef"
BASE = "https://sms.example.co.jp"
URL = BASE + "/v1/sms/twilio/inbound"
SENDER = jp(21)


@pytest.fixture
def settings_overrides():
    return {"twilio_auth_token": TOKEN, "public_base_url": BASE, "allowed_regions": ["JP", "KR"]}


def form(body: str, sender: str = SENDER) -> dict[str, str]:
    return {
        "MessageSid": "SM" + "e" * 32,
        "AccountSid": "AC" + "b" * 32,
        "From": sender,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }


def signed(params: dict[str, str], *, token: str = TOKEN, url: str = URL) -> dict[str, str]:
    return {
        "X-Twilio-Signature": RequestValidator(token).compute_signature(url, params),
        "Content-Type": "application/x-www-form-urlencoded",
    }


async def inbound(client: httpx.AsyncClient, params: dict[str, str], headers: dict[str, str]):
    return await client.post("/v1/sms/twilio/inbound", content=urlencode(params), headers=headers)


def state(app, subscriber_id: str) -> str:
    found = rows(app, "SELECT status FROM consents WHERE subscriber_id = :s", s=subscriber_id)
    return found[0][0] if found else "none"


@pytest.fixture
async def subscriber(client, app, full_auth) -> str:
    subscriber_id = await register(app, SENDER)
    await opted_in(client, full_auth, subscriber_id)
    return subscriber_id


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        "stop",
        " Stop \n",
        "ＳＴＯＰ",  # full-width
        "ｓｔｏｐ",
        "\u3000STOP\u3000",  # ideographic spaces
        "stop\u200b",  # a zero-width space a keyboard left
        "\ufeffSTOP",  # a byte-order mark
        "StopAll",
        "unsubscribe",
        "Cancel",
        "END",
        "quit",
        "revoke",
        "OptOut",
        "停止",
        "配信停止",
        "中止",
        "수신거부",
        unicodedata.normalize("NFD", "수신거부"),  # decomposed Hangul jamo
        "거부",
        "중지",
    ],
)
async def test_stop_words_opt_the_sender_out(client, app, subscriber, body):
    answer = await inbound(client, form(body), signed(form(body)))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/xml")
    assert answer.text.endswith("<Response/>")
    assert state(app, subscriber) == "opted_out"
    [event] = rows(
        app, "SELECT action, source, actor, client_ip FROM consent_events ORDER BY id DESC LIMIT 1"
    )
    assert tuple(event) == ("opt_out", "sms", "sms:twilio", None)


async def test_twilios_word_for_an_opt_out_is_taken_whatever_the_body(client, app, subscriber):
    """With Advanced Opt-Out, Twilio blocks the number on a keyword of its own (one set in
    its console too) and says so in OptOutType: the consent follows what Twilio did."""
    params = {**form("やめて"), "OptOutType": "STOP"}
    answer = await inbound(client, params, signed(params))
    assert answer.status_code == 200
    assert state(app, subscriber) == "opted_out"


@pytest.mark.parametrize("kind", ["HELP", "START"])
async def test_twilios_other_words_change_nothing(client, app, subscriber, kind):
    before = counts(app)
    params = {**form(kind), "OptOutType": kind}
    assert (await inbound(client, params, signed(params))).status_code == 200
    assert state(app, subscriber) == "opted_in"
    assert counts(app) == before


@pytest.mark.parametrize("body", ["STOP please", "hello", "", "S TOP", "STOPP", "start", "停"])
async def test_other_messages_change_nothing(client, app, subscriber, body):
    before = counts(app)
    answer = await inbound(client, form(body), signed(form(body)))
    assert answer.status_code == 200
    assert answer.text.endswith("<Response/>")
    assert state(app, subscriber) == "opted_in"
    assert counts(app) == before


@pytest.mark.parametrize(
    "headers",
    [
        signed(form("STOP"), token="wrong-token"),
        {"Content-Type": "application/x-www-form-urlencoded"},  # no signature
        {**signed(form("STOP")), "X-Twilio-Signature": ""},
        signed(form("STOP"), url="https://attacker.example/v1/sms/twilio/inbound"),
        signed(form("STOP"), url=BASE + "/v1/sms/twilio/status"),  # another webhook's URL
    ],
    ids=["wrong-token", "no-header", "empty-header", "other-host", "other-path"],
)
async def test_bad_or_missing_signature_is_refused(client, app, subscriber, headers):
    before = counts(app)
    answer = await inbound(client, form("STOP"), headers)
    assert answer.status_code == 403
    assert state(app, subscriber) == "opted_in"
    assert counts(app) == before


async def test_forged_sender_under_a_real_signature_is_refused(client, app, subscriber):
    other = form("STOP", sender=jp(99))
    answer = await inbound(client, form("STOP"), signed(other))
    assert answer.status_code == 403
    assert state(app, subscriber) == "opted_in"


async def test_unknown_sender_is_acknowledged_and_nothing_is_written(client, app, subscriber):
    before = counts(app)
    for sender in (jp(77), "+821099998888", "Twilio", "12345", ""):
        params = form("STOP", sender=sender)
        answer = await inbound(client, params, signed(params))
        assert answer.status_code == 200
        assert answer.text.endswith("<Response/>")
    assert counts(app) == before
    assert state(app, subscriber) == "opted_in"


async def test_sender_never_opted_in_gets_an_opt_out_on_record(client, app):
    subscriber_id = await register(app, SENDER)
    answer = await inbound(client, form("STOP"), signed(form("STOP")))
    assert answer.status_code == 200
    assert state(app, subscriber_id) == "opted_out"


async def test_number_and_body_are_never_logged(client, app, subscriber, caplog):
    caplog.set_level(logging.DEBUG)
    body = "配信停止"
    await inbound(client, form(body), signed(form(body)))
    await inbound(client, form("STOP"), signed(form("STOP"), token="bad"))
    assert state(app, subscriber) == "opted_out"
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert SENDER not in text and SENDER[1:] not in text and body not in text
    stored = rows(app, "SELECT * FROM audit_events") + rows(app, "SELECT * FROM consent_events")
    assert SENDER not in str(stored) and body not in str(stored)


class TestConfiguredWords:
    @pytest.fixture
    def settings_overrides(self):
        return {"twilio_auth_token": TOKEN, "public_base_url": BASE, "stop_words": ["HALT"]}

    async def test_only_the_configured_words_stop(self, client, app, subscriber):
        stop = form("STOP")
        await inbound(client, stop, signed(stop))
        assert state(app, subscriber) == "opted_in"
        halt = form("ｈａｌｔ")
        await inbound(client, halt, signed(halt))
        assert state(app, subscriber) == "opted_out"


async def test_webhook_is_off_without_a_token(client, app, settings, subscriber):
    settings.twilio_auth_token = None
    answer = await inbound(client, form("STOP"), signed(form("STOP")))
    assert answer.status_code == 404
    assert state(app, subscriber) == "opted_in"


async def test_a_stop_that_meets_the_senders_erasure_is_answered(client, app, subscriber):
    """The STOP found the subscriber, the erasure deleted it, and the opt-out's history
    row hit the foreign key: a 500 to the carrier, which sends it again. Now the opt-out
    waits for the erasure and finds nobody to opt out. (PostgreSQL: the subscriber's row
    is held from another connection, so the erasure is under way when the STOP comes.)"""
    import asyncio

    import sqlalchemy as sa

    from app.subject import erasure
    from tests.conftest import call, sync_engine

    engine = sync_engine(app)
    if engine.dialect.name != "postgresql":
        pytest.skip("units run one at a time on SQLite")
    held = sa.text("SELECT 1 FROM subscribers WHERE id = :s FOR UPDATE")
    with engine.connect() as conn:
        conn.execute(held, {"s": subscriber})
        erasing = asyncio.create_task(
            call(app, erasure.erase, subscriber_id=subscriber, actor="test", channel="letter")
        )
        await asyncio.sleep(0.3)
        stopping = asyncio.create_task(inbound(client, form("STOP"), signed(form("STOP"))))
        await asyncio.sleep(0.3)
        conn.rollback()
    await erasing
    answer = await stopping
    assert answer.status_code == 200, answer.text
    assert rows(app, "SELECT id FROM consent_events WHERE subscriber_id = :s", s=subscriber) == []
