"""STOP by SMS and the staff search find a number indexed under the old key, mid-rotation.

Both go through the service's own routes, on an app with the rotation's key rings (t2
active, t1 kept): the inbound SMS webhook and the staff search.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from twilio.request_validator import RequestValidator

from app.main import create_app
from app.staff.roles import Role
from tests.fixtures.staff import staff_auth
from tests.keys.conftest import ROTATED
from tests.keys.helpers import new_client, number, register, ring_settings, rows

TOKEN = "twilio-test-token-0123456789abcdef"
BASE = "https://sms.example.co.jp"


@pytest.fixture
async def rotating(database_url, tmp_path, clock, carrier) -> AsyncIterator[FastAPI]:
    """The service mid-rotation: every ring holds t2 (active) and t1."""
    settings = ring_settings(
        database_url,
        tmp_path,
        rings={family: ("t2", "t1") for family in ROTATED},
        twilio_auth_token=TOKEN,
        public_base_url=BASE,
    )
    app = create_app(settings, clock=clock, sender=carrier)
    yield app
    await app.state.db.dispose()


@pytest.fixture
async def http(rotating) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=rotating, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_stop_by_sms_finds_a_subscriber_under_the_old_index_key(old, new, rotating, http):
    subscriber = await register(old, await new_client(old), number(21), "coupon_delivery")
    form = {
        "MessageSid": "SM" + "e" * 32,
        "AccountSid": "AC" + "b" * 32,
        "From": number(21),
        "To": "+15005550006",
        "Body": "STOP",
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }
    signature = RequestValidator(TOKEN).compute_signature(BASE + "/v1/sms/twilio/inbound", form)
    answer = await http.post(
        "/v1/sms/twilio/inbound",
        content=urlencode(form),
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert answer.status_code == 200, answer.text
    (consent,) = [row for row in await rows(new, "consents") if row.subscriber_id == subscriber]
    assert consent.status == "opted_out"


async def test_staff_search_finds_a_subscriber_under_the_old_index_key(old, rotating, http):
    subscriber = await register(old, await new_client(old), number(22))
    auth = await staff_auth(rotating, role=Role.OPERATOR)
    found = await http.post("/v1/subscribers/search", json={"phone": number(22)}, headers=auth)
    assert found.status_code == 200, found.text
    assert [view["id"] for view in found.json()["subscribers"]] == [subscriber]
