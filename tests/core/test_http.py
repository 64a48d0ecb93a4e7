"""The caller's address: X-Forwarded-For is believed only from the trusted proxies named in
SMSREG_TRUSTED_PROXIES, read right to left; with none (the default), never. And no
redirect takes its host from what a caller sends."""

from __future__ import annotations

import httpx
import pytest

from app.main import create_app
from tests.fixtures.flows import start

LIMITED = {"sends_per_ip_hour": 1, "sends_per_prefix_hour": 100}


async def two_starts(app, peer: str, first: str, second: str, auth) -> list[int]:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        a = await start(http, auth, phone="090-1111-0001", headers={"X-Forwarded-For": first})
        b = await start(http, auth, phone="090-1111-0002", headers={"X-Forwarded-For": second})
    return [a.status_code, b.status_code]


@pytest.mark.parametrize("settings_overrides", [LIMITED])
async def test_without_trusted_proxies_a_forged_header_from_loopback_is_not_believed(
    client, app, auth
):
    """uvicorn's own default trusts 127.0.0.1; the service's does not."""
    assert await two_starts(app, "127.0.0.1", "198.51.100.1", "198.51.100.2", auth) == [201, 429]


@pytest.mark.parametrize("settings_overrides", [{**LIMITED, "trusted_proxies": ["10.0.0.0/8"]}])
async def test_a_trusted_proxy_names_the_client(client, app, auth):
    assert await two_starts(app, "10.1.2.3", "198.51.100.1", "198.51.100.2", auth) == [201, 201]


@pytest.mark.parametrize("settings_overrides", [{**LIMITED, "trusted_proxies": ["10.0.0.0/8"]}])
async def test_an_untrusted_peer_cannot_name_another_client(client, app, auth):
    assert await two_starts(app, "203.0.113.50", "198.51.100.1", "198.51.100.2", auth) == [
        201,
        429,
    ]


@pytest.mark.parametrize("settings_overrides", [{**LIMITED, "trusted_proxies": ["10.0.0.0/8"]}])
async def test_the_header_is_read_right_to_left_so_a_client_cannot_prepend_itself(
    client, app, auth
):
    """The client sends its own X-Forwarded-For; our proxy appends the real address."""
    assert await two_starts(
        app, "10.1.2.3", "192.0.2.7, 198.51.100.1", "192.0.2.7, 198.51.100.1", auth
    ) == [201, 429]


def test_the_service_adds_no_proxy_middleware_without_trusted_proxies(settings):
    app = create_app(settings)
    assert not [m for m in app.user_middleware if m.cls.__name__ == "ProxyHeadersMiddleware"]


@pytest.mark.parametrize("path", ["/v1/verifications/", "/v1/staff/me/", "/healthz/"])
async def test_no_redirect_by_trailing_slash_takes_its_host_from_the_request(client, path):
    answer = await client.get(path, headers={"Host": "evil.example"})
    assert answer.status_code == 404 and "location" not in answer.headers


@pytest.mark.parametrize(("path", "to"), [("/console", "/console/"), ("/my", "/my/")])
async def test_the_pages_roots_redirect_to_a_path(client, path, to):
    answer = await client.get(path, headers={"Host": "evil.example"})
    assert answer.status_code == 307 and answer.headers["location"] == to
