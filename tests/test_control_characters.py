"""A control character in a field that reaches a query is refused by name (422), never a
500 or a broken answer: PostgreSQL refuses a NUL in text, SQLite does not."""

from __future__ import annotations

import pytest

from tests.console.helpers import post
from tests.fixtures.staff import staff_auth


@pytest.mark.parametrize("username", ["\x00", "han\x00ako", "hanako\n"])
async def test_a_login_username_with_a_control_character_is_refused(client, username):
    body = {"username": username, "password": "a long enough password"}
    answer = await client.post("/v1/staff/sessions", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "username"
    form = await post(client, "/console/login", {"username": username, "password": "x" * 20},
                      csrf_from="/console/login")  # fmt: skip
    assert form.status_code == 422 and form.headers["content-type"].startswith("text/html")


async def test_a_ledger_export_filter_with_a_control_character_is_refused(client, app):
    auditor = await staff_auth(app, role="auditor")
    for fmt in ("jsonl", "csv"):
        answer = await client.get(
            "/v1/ledger/export", params={"format": fmt, "recipient": "\x00"}, headers=auditor
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == "recipient"
