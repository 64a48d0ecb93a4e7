"""Bad input on /v1/deliveries: a 4xx naming the field, and nothing written."""

from __future__ import annotations

import pytest

from app.delivery.segments import segments
from tests.consent.helpers import counts, jp, opted_in, register

GOOD = {"campaign_id": "c-1", "messages": {"en": "Hello"}, "default_locale": "en"}


def without(key: str) -> dict:
    return {k: v for k, v in GOOD.items() if k != key}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (without("campaign_id"), "campaign_id"),
        ({**GOOD, "campaign_id": ""}, "campaign_id"),
        ({**GOOD, "campaign_id": "has space"}, "campaign_id"),
        ({**GOOD, "campaign_id": "x" * 65}, "campaign_id"),
        ({**GOOD, "campaign_id": "-leading"}, "campaign_id"),
        ({**GOOD, "campaign_id": 42}, "campaign_id"),
        (without("messages"), "messages"),
        ({**GOOD, "messages": {}}, "messages"),
        ({**GOOD, "messages": "Hello"}, "messages"),
        ({**GOOD, "messages": {"fr": "Bonjour"}}, "messages.fr.[key]"),
        ({**GOOD, "messages": {"en": ""}}, "messages.en"),
        ({**GOOD, "messages": {"en": "   \n "}}, "messages.en"),
        ({**GOOD, "messages": {"en": "x" * 1601}}, "messages.en"),
        ({**GOOD, "messages": {"en": "Hi\x07there"}}, "messages.en"),
        ({**GOOD, "messages": {"en": "Hi \u202egnp.exe"}}, "messages.en"),  # bidi override
        ({**GOOD, "messages": {"en": "Hi\u3164there"}}, "messages.en"),  # a Hangul filler
        ({**GOOD, "messages": {"en": "a" + "\u200d" * 150}}, "messages.en"),  # joiners, no emoji
        ({**GOOD, "messages": {"en": "Sale \u200d50%"}}, "messages.en"),  # a joiner by a space
        ({**GOOD, "messages": {"en": "a" * 460}}, "messages.en"),  # 4 parts with the line
        ({**GOOD, "messages": {"en": "ok", "ja": "あ" * 200}}, "messages.ja"),
        ({**GOOD, "messages": {"en": "ok", "ko": "봄 쿠폰"}}, "messages.ko"),  # no (광고)
        ({**GOOD, "messages": {"en": "ok", "ko": "봄 쿠폰 (광고)"}}, "messages.ko"),
        (without("default_locale"), "default_locale"),
        ({**GOOD, "default_locale": "ja"}, "default_locale"),  # no ja text
        ({**GOOD, "default_locale": "de"}, "default_locale"),
        ({**GOOD, "subscriber_ids": ["sub_x"]}, "subscriber_ids"),
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(client, app, full_auth, body, field):
    await opted_in(client, full_auth, await register(app, jp(1)))
    before = counts(app)
    answer = await client.post("/v1/deliveries", json=body, headers=full_auth)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert field in {error["field"] for error in answer.json()["errors"]}, answer.json()
    assert counts(app) == before


async def test_bad_json(client, app, full_auth):
    before = counts(app)
    answer = await client.post(
        "/v1/deliveries",
        content=b'{"campaign_id": ',
        headers={**full_auth, "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "body"
    assert counts(app) == before


@pytest.mark.parametrize("delivery_id", ["nope", "dlv_", "dlv_a.b", "dlv_" + "a" * 40])
async def test_bad_delivery_id(client, full_auth, delivery_id):
    answer = await client.get(f"/v1/deliveries/{delivery_id}", headers=full_auth)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "delivery_id"


async def test_unknown_delivery(client, full_auth):
    answer = await client.get("/v1/deliveries/dlv_doesnotexist", headers=full_auth)
    assert answer.status_code == 404


async def test_keys_need_the_deliveries_scope(client, app, auth):
    before = counts(app)
    assert (await client.post("/v1/deliveries", json=GOOD)).status_code == 401
    assert (await client.get("/v1/deliveries/dlv_x1")).status_code == 401
    assert (await client.post("/v1/deliveries", json=GOOD, headers=auth)).status_code == 403
    assert (await client.get("/v1/deliveries/dlv_x1", headers=auth)).status_code == 403
    # A caller without a valid key learns nothing about its input.
    assert (await client.post("/v1/deliveries", json={"messages": 1})).status_code == 401
    assert (await client.post("/v1/deliveries", json={}, headers=auth)).status_code == 403
    assert counts(app) == before


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters count twice
        ("€" * 81, 2),
        ("あ" * 70, 1),
        ("あ" * 71, 2),
        ("あ" * 134, 2),
        ("あ" * 135, 3),
        ("a" * 69 + "😀", 2),  # UCS-2, and the emoji is two code units: 71
        ("수신거부", 1),
    ],
)
def test_segments(text, parts):
    assert segments(text) == parts


async def test_longest_allowed_text_is_accepted(client, app, full_auth):
    line = app.state.ctx.settings.delivery_opt_out_lines["ja"]
    longest = "あ" * (3 * 67 - len(line) - 1)  # 3 parts with "\n" and the line
    ok = await client.post(
        "/v1/deliveries",
        json={"campaign_id": "c-max", "messages": {"ja": longest}, "default_locale": "ja"},
        headers=full_auth,
    )
    assert ok.status_code == 201, ok.text
    over = await client.post(
        "/v1/deliveries",
        json={"campaign_id": "c-over", "messages": {"ja": longest + "あ"}, "default_locale": "ja"},
        headers=full_auth,
    )
    assert over.status_code == 422


async def test_a_korean_text_that_starts_with_the_advertising_mark_is_taken(client, app, full_auth):
    await opted_in(client, full_auth, await register(app, jp(1)))
    body = {**GOOD, "messages": {"en": "Hello", "ko": "(광고) 봄 쿠폰"}}
    answer = await client.post("/v1/deliveries", json=body, headers=full_auth)
    assert answer.status_code == 201, answer.text


async def test_an_emoji_sequence_keeps_its_joiners(client, app, full_auth):
    await opted_in(client, full_auth, await register(app, jp(1)))
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    body = {**GOOD, "messages": {"en": f"Family coupon {family}"}}
    answer = await client.post("/v1/deliveries", json=body, headers=full_auth)
    assert answer.status_code == 201, answer.text
