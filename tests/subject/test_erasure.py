"""Erasure: the number is gone from the database files (and the WAL) in every form; what
is kept names only the pseudonymous id; the same number later makes a new subscriber."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.migrations import upgrade
from tests.consent.helpers import make_key
from tests.fixtures.database import sqlite_files
from tests.staff.helpers import events, rows, verified
from tests.subject.helpers import open_session

NUMBER = "+819087654321"
FORMS = ("+819087654321", "09087654321", "090-8765-4321", "9087654321", "90-8765-4321")
NEIGHBOUR = "+819087650000"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A database of this test's own, so nothing of another test's is in its files."""
    url = f"sqlite:///{tmp_path / 'erase.db'}"
    upgrade(url)
    return url


def _files(app) -> bytes:
    return sqlite_files(app.state.db.url.removeprefix("sqlite:///"))


def _secrets(app, subscriber_id: str) -> list[bytes]:
    """Every form the number takes in the database: its text forms, its blind index under
    every index key (text and raw bytes), and each ciphertext stored."""
    ctx = app.state.ctx
    found = [form.encode() for form in FORMS]
    for index in ctx.keys.blind_indexes(NUMBER, kind="number"):
        found += [index.encode(), bytes.fromhex(index.split(":", 1)[1])]
    for row in rows(app, "SELECT phone_ciphertext FROM subscribers WHERE id = :s", s=subscriber_id):
        found.append(bytes(row["phone_ciphertext"]))
    mine = ctx.keys.blind_index(NUMBER, kind="number")
    for row in rows(app, "SELECT phone_ciphertext FROM verifications WHERE phone_index = :i",
                    i=mine):  # fmt: skip
        found.append(bytes(row["phone_ciphertext"]))
    return found


async def test_erasure_leaves_no_trace_of_the_number_in_the_files(client, app, carrier):
    auth = await make_key(app, ["verifications:write", "consents:write"])
    subscriber_id = await verified(client, app, carrier, auth, NUMBER, "coupon_delivery")
    neighbour = await verified(client, app, carrier, auth, NEIGHBOUR, "coupon_delivery")
    opt_in = {"purpose": "coupon_delivery", "action": "opt_in", "source": "web",
              "policy_version": "2026-11"}  # fmt: skip
    for sid in (subscriber_id, neighbour):
        response = await client.post(f"/v1/subscribers/{sid}/consents", json=opt_in, headers=auth)
        assert response.status_code == 201, response.text
    headers = await open_session(client, app, carrier, NUMBER)
    forms = _secrets(app, subscriber_id)
    before = _files(app)
    # The search would find the number: its ciphertexts are in the files before.
    assert all(form in before for form in forms[-3:])

    response = await client.post("/v1/subject/erasure", json={"confirm": True}, headers=headers)
    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt["subject_id"] == subscriber_id
    assert receipt["erased"]["subscribers"] == 1
    assert receipt["erased"]["verifications"] == 2
    # The client's sends to the number and the self-service page's, each its own window.
    assert receipt["erased"]["send_windows"] == 2
    assert {kept["what"] for kept in receipt["kept"]} >= {"ledger_entry_subjects", "access_log"}
    await app.state.db.dispose()

    after = _files(app)
    assert after, "the database files are there"
    for form in forms:
        assert form not in after
    # Only this subscriber went: the neighbour is still whole.
    assert rows(app, "SELECT id FROM subscribers") == [{"id": neighbour}]
    assert rows(app, "SELECT count(*) AS n FROM consent_events WHERE subscriber_id = :s",
                s=subscriber_id) == [{"n": 0}]  # fmt: skip
    # The receipt is recorded, and the audit names the pseudonymous id only.
    stored = rows(app, "SELECT kind, status, receipt FROM subject_requests WHERE id = :i",
                  i=receipt["id"])  # fmt: skip
    assert stored[0]["kind"] == "erase" and stored[0]["status"] == "done"
    assert events(app, "subject:erased")[0]["subject"] == subscriber_id


async def test_the_session_goes_with_the_erasure_and_the_number_comes_back_new(
    client, app, carrier, clock
):
    auth = await make_key(app, ["verifications:write"])
    old = await verified(client, app, carrier, auth, NUMBER)
    headers = await open_session(client, app, carrier, NUMBER)
    assert (
        await client.post("/v1/subject/erasure", json={"confirm": True}, headers=headers)
    ).status_code == 200
    assert (await client.get("/v1/subject/data", headers=headers)).status_code == 401
    clock.advance(minutes=1)
    new = await verified(client, app, carrier, auth, NUMBER)
    assert new != old


async def test_erasure_deletes_the_stored_answers_to_the_numbers_starts(client, app, carrier):
    """A start with an Idempotency-Key stores its first answer (the verification and the
    masked number): the number's erasure deletes it, and no other client's answer."""
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    for number, key in ((NUMBER, "mine-1"), (NEIGHBOUR, "theirs-1")):
        body = {"phone": number, "purpose": "coupon_usage"}
        started = await client.post(
            "/v1/verifications", json=body, headers={**auth, "Idempotency-Key": key}
        )
        assert started.status_code == 201, started.text
    headers = await open_session(client, app, carrier, NUMBER)
    response = await client.post("/v1/subject/erasure", json={"confirm": True}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["erased"]["idempotency_records"] == 1
    assert [row["key"] for row in rows(app, "SELECT key FROM idempotency_records")] == ["theirs-1"]


@pytest.mark.parametrize(
    "body", [{}, {"confirm": False}, {"confirm": "yes"}, {"confirm": 1}, {"confirm": "true"}]
)
async def test_erasure_needs_confirmation(client, app, carrier, body):
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    headers = await open_session(client, app, carrier, NUMBER)
    response = await client.post("/v1/subject/erasure", json=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "confirm"
    assert len(rows(app, "SELECT id FROM subscribers")) == 1
