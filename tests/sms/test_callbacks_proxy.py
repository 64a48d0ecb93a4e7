"""Without a configured public URL, the signed URL is the request's own: its scheme is
believed from X-Forwarded-Proto only from a trusted proxy (SMSREG_TRUSTED_PROXIES)."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

TOKEN = "twilio-test-token-0123456789abcdef"
PUBLIC = "https://sms.example.co.jp/v1/sms/twilio/status"
PARAMS = {"MessageSid": "SM" + "d" * 32, "MessageStatus": "delivered"}


@pytest.fixture
def settings_overrides():
    return {"twilio_auth_token": TOKEN, "trusted_proxies": ["10.0.0.0/8"]}


def headers() -> dict[str, str]:
    return {
        "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(PUBLIC, PARAMS),
        "X-Forwarded-Proto": "https",
        # A proxy passes the public host on (nginx: proxy_set_header Host $host).
        "Host": "sms.example.co.jp",
        "Content-Type": "application/x-www-form-urlencoded",
    }


@pytest.mark.parametrize(("peer", "status"), [("10.0.0.5", 204), ("198.51.100.9", 403)])
async def test_forwarded_url_is_believed_only_from_a_trusted_proxy(app, peer, status):
    transport = httpx.ASGITransport(app=app, client=(peer, 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as http:
        answer = await http.post(
            "/v1/sms/twilio/status", content=urlencode(PARAMS), headers=headers()
        )
    assert answer.status_code == status


async def test_callbacks_off_without_a_token(client, settings):
    settings.twilio_auth_token = None
    answer = await client.post(
        "/v1/sms/twilio/status", content=urlencode(PARAMS), headers=headers()
    )
    assert answer.status_code == 404
