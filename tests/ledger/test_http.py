"""The ledger over HTTP, with staff sessions: the workflow, the auditors' tools, subjects."""

from __future__ import annotations

import hashlib
import json
import re

import orjson
import pytest

from app.ledger import chain
from app.ledger.verify.files import parse_public_keys, verify_lines
from app.staff.roles import Role
from tests.fixtures.staff import CHEAP_HASHING, staff_auth
from tests.fixtures.subject import add_subscriber
from tests.ledger.conftest import POLICE, number, sql


def body(subject_ids, **overrides):
    values = {
        "recipient": {"organisation": POLICE, "officer": "Inspector Sato", "contact": "desk"},
        "legal_basis": "investigation_compelled",
        "purpose": "Fraud investigation into coupon abuse ring",
        "request_reference": "CCP 197(2) inquiry No. 2026-118",
        "data_items": ["phone_number", "subscriber_id"],
        "subject_ids": subject_ids,
        "necessity_review": "Only the numbers named in the inquiry; no history is provided.",
    }
    values.update(overrides)
    return values


@pytest.fixture
async def people(app, client):
    return {
        "operator": await staff_auth(app, client, Role.OPERATOR, username="op-1"),
        "officer_a": await staff_auth(app, client, Role.PRIVACY_OFFICER, username="po-a"),
        "officer_b": await staff_auth(app, client, Role.PRIVACY_OFFICER, username="po-b"),
        "auditor": await staff_auth(app, client, Role.AUDITOR, username="aud-1"),
        "admin": await staff_auth(app, client, Role.ADMIN, username="adm-1"),
    }


async def test_request_approve_release_export_verify(client, app, people):
    subject = await add_subscriber(app, number(7))
    created = await client.post("/v1/disclosures", json=body([subject]), headers=people["operator"])
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    assert created.json()["status"] == "requested"

    url = f"/v1/disclosures/{request_id}"
    early = await client.post(f"{url}/release", headers=people["officer_a"])
    assert early.status_code == 409, "only an approved request is released"
    note = {"note": "Lawful inquiry, narrowly scoped"}
    assert (
        await client.post(f"{url}/approve", json=note, headers=people["operator"])
    ).status_code == 403
    approved = await client.post(f"{url}/approve", json=note, headers=people["officer_a"])
    assert approved.status_code == 200 and approved.json()["status"] == "approved"

    released = await client.post(f"{url}/release", headers=people["officer_b"])
    assert released.status_code == 200, released.text
    assert released.headers["Cache-Control"] == "no-store"
    assert number(7) in released.text, "the package is what leaves: it holds the number"
    seq = released.json()["ledger_seq"]
    # The copies to hand over hash to what the ledger holds, byte for byte.
    answer = released.json()
    assert hashlib.sha256(answer["package_json"].encode()).hexdigest() == answer["package_sha256"]
    assert (
        hashlib.sha256(answer["package_csv"].encode()).hexdigest() == (answer["package_csv_sha256"])
    )
    assert orjson.loads(answer["package_json"]) == answer["package"]
    (entry,) = sql(app, "SELECT package_sha256, package_csv_sha256 FROM ledger_entries")
    assert tuple(entry) == (answer["package_sha256"], answer["package_csv_sha256"])
    again = await client.post(f"{url}/release", headers=people["officer_b"])
    assert again.status_code == 409, "released once"

    for who in ("operator", "officer_a", "auditor"):
        read = await client.get(url, headers=people[who])
        assert read.status_code == 200 and read.json()["ledger_seq"] == seq
        assert number(7) not in read.text
    assert (await client.get(url, headers=people["admin"])).status_code == 403

    exported = await client.get("/v1/ledger/export?format=jsonl", headers=people["auditor"])
    assert exported.status_code == 200 and exported.headers["Cache-Control"] == "no-store"
    lines = [orjson.loads(line) for line in exported.text.splitlines() if line]
    assert any(line.get("seq") == seq for line in lines)
    assert number(7) not in exported.text and number(7)[3:] not in exported.text
    csv = await client.get("/v1/ledger/export?format=csv", headers=people["officer_a"])
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    # Each download named by when it was made, and whether filtered (all had one name).
    assert re.fullmatch(
        r'attachment; filename="smsreg-ledger-\d{8}T\d{6}Z\.csv"',
        csv.headers["content-disposition"],
    )
    law = await client.get("/v1/ledger/export?format=jsonl&basis=law", headers=people["auditor"])
    assert law.headers["content-disposition"].endswith('-filtered.jsonl"')
    bad = await client.get("/v1/ledger/export?basis=gossip", headers=people["auditor"])
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "basis"
    assert (await client.get("/v1/ledger/export", headers=people["operator"])).status_code == 403
    # The admin exports it (the owner's disclosure-log export): it holds no number.
    by_admin = await client.get("/v1/ledger/export?format=jsonl", headers=people["admin"])
    assert by_admin.status_code == 200 and any(
        orjson.loads(line).get("seq") == seq for line in by_admin.text.splitlines() if line
    )
    assert number(7) not in by_admin.text and number(7)[3:] not in by_admin.text
    assert (await client.get("/v1/ledger/verify", headers=people["admin"])).status_code == 403

    checkpoint = await client.post("/v1/ledger/checkpoints", headers=people["auditor"])
    assert checkpoint.status_code == 201 and checkpoint.json()["seq"] == seq
    report = await client.get("/v1/ledger/verify", headers=people["auditor"])
    assert report.status_code == 200, report.text
    assert report.json()["ok"] is True and report.json()["entries"] == 1


async def test_self_approval_is_refused(client, app, people):
    subject = await add_subscriber(app, number(8))
    mine = await client.post("/v1/disclosures", json=body([subject]), headers=people["officer_a"])
    assert mine.status_code == 201
    url = f"/v1/disclosures/{mine.json()['id']}/approve"
    refused = await client.post(url, json={"note": "approving my own"}, headers=people["officer_a"])
    assert refused.status_code == 403
    other = await client.post(
        url, json={"note": "reviewed by another"}, headers=people["officer_b"]
    )
    assert other.status_code == 200


async def test_a_request_at_its_documented_limits_fits_under_the_body_cap(client, app, people):
    """2,000 and 4,000 Japanese characters, JSON with every character escaped: well under
    the cap (it was 16 KiB, and this was refused with 413)."""
    subject = await add_subscriber(app, number(8))
    long = body([subject], purpose="捜" * 2000, necessity_review="要" * 4000)
    sent = json.dumps(long).encode()  # ensure_ascii: \uXXXX, 6 bytes a character
    assert len(sent) > 36_000
    answer = await client.post(
        "/v1/disclosures",
        content=sent,
        headers={**people["operator"], "Content-Type": "application/json"},
    )
    assert answer.status_code == 201, answer.text


async def test_a_mistyped_field_is_refused_not_dropped(client, app, people):
    subject = await add_subscriber(app, number(9))
    typo = {**body([subject]), "request_refrence": "REF-2026-1"}
    nested = body([subject])
    nested["recipient"] = {**nested["recipient"], "phone": "03-0000-0000"}
    for sent, field in ((typo, "request_refrence"), (nested, "phone")):
        refused = await client.post("/v1/disclosures", json=sent, headers=people["operator"])
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"].endswith(field)
    assert sql(app, "SELECT count(*) FROM disclosure_requests") == [(0,)]


async def test_a_subject_who_stopped_provision_is_refused_under_consent_only(client, app, people):
    subject = await add_subscriber(app, number(9))
    url = f"/v1/subscribers/{subject}/third-party-provision"
    stop = await client.post(
        url, json={"action": "stop", "source": "phone"}, headers=people["operator"]
    )
    assert stop.status_code == 200 and stop.json()["stopped_at"] is not None
    emergency = body([subject], legal_basis="emergency_life_body_property", request_reference=None)
    urgent = await client.post("/v1/disclosures", json=emergency, headers=people["operator"])
    assert urgent.status_code == 201, urgent.text
    assert urgent.json()["stop_overridden"] == [subject]
    compelled = await client.post(
        "/v1/disclosures", json=body([subject]), headers=people["operator"]
    )
    assert compelled.status_code == 201 and compelled.json()["stop_overridden"] == [subject]

    consent = body([subject], legal_basis="consent", request_reference=None)
    resume = {"action": "resume", "source": "phone"}
    assert (await client.post(url, json=resume, headers=people["operator"])).status_code == 200
    assert (
        await client.post("/v1/disclosures", json=consent, headers=people["operator"])
    ).status_code == 409
    given = await client.post(
        f"/v1/subscribers/{subject}/provision-consents",
        json={"action": "give", "recipient": POLICE, "source": "web-form"},
        headers=people["operator"],
    )
    assert given.status_code == 200, given.text
    assert (
        await client.post("/v1/disclosures", json=consent, headers=people["operator"])
    ).status_code == 201


async def test_a_withdrawal_matching_no_live_consent_is_refused_and_writes_nothing(
    client, app, people
):
    """Withdrawn as 'ｶﾌﾞｼｷｶﾞｲｼｬ テスト' for a consent to '株式会社テスト', the answer was 200
    with the consent still live, the access log said it was withdrawn, and a release went
    on under the consent the person had asked to withdraw."""
    subject = await add_subscriber(app, number(15))
    url = f"/v1/subscribers/{subject}/provision-consents"
    given = {"action": "give", "recipient": "株式会社テスト", "source": "letter"}
    assert (await client.post(url, json=given, headers=people["operator"])).status_code == 200
    logged = "SELECT count(*) AS n FROM access_log"
    before = sql(app, logged)
    mistyped = {"action": "withdraw", "recipient": "ｶﾌﾞｼｷｶﾞｲｼｬ テスト", "source": "phone"}
    refused = await client.post(url, json=mistyped, headers=people["operator"])
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "recipient"
    assert sql(app, logged) == before
    withdrawn = {**mistyped, "recipient": "株式会社テスト"}
    done = await client.post(url, json=withdrawn, headers=people["operator"])
    assert done.status_code == 200
    assert [c["withdrawn_at"] is not None for c in done.json()["consents"]] == [True]


async def test_a_subject_sees_the_records_about_them(client, app, people):
    subject = await add_subscriber(app, number(10))
    created = await client.post("/v1/disclosures", json=body([subject]), headers=people["operator"])
    url = f"/v1/disclosures/{created.json()['id']}"
    await client.post(f"{url}/approve", json={"note": "Lawful"}, headers=people["officer_a"])
    await client.post(f"{url}/release", headers=people["officer_b"])
    records = await client.get(f"/v1/subscribers/{subject}/disclosures", headers=people["operator"])
    assert records.status_code == 200 and records.headers["Cache-Control"] == "no-store"
    [record] = records.json()["records"]
    assert record["recipient"]["organisation"] == POLICE
    assert number(10) not in records.text
    missing = await client.get(
        "/v1/subscribers/sub_missing/disclosures", headers=people["operator"]
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"legal_basis": "curiosity"}, "legal_basis"),
        ({"request_reference": None}, "request_reference"),
        ({"subject_ids": []}, "subject_ids"),
        ({"data_items": ["shoe_size"]}, "data_items.0"),  # the item at fault
        ({"necessity_review": "short"}, "necessity_review"),
        # A number hidden by invisible characters, which a reviewer would not see.
        ({"purpose": "Caller 080\u200b5555\u200b6666 reported fraud"}, "purpose"),
        # Invisible format characters anywhere: text kept for years reads as it is.
        ({"request_reference": "CCP 197(2)\u200b inquiry"}, "request_reference"),
        ({"request_reference": "CCP 197(2)\u3164 inquiry"}, "request_reference"),
        (
            {
                "recipient": {
                    "organisation": "Police \u202eecnarf",
                    "officer": "Sato",
                    "contact": "desk",
                }
            },
            "recipient.organisation",
        ),
    ],
)
async def test_bad_requests_name_the_field_and_write_nothing(client, app, people, change, field):
    subject = await add_subscriber(app, number(11))
    answer = await client.post(
        "/v1/disclosures", json={**body([subject]), **change}, headers=people["operator"]
    )
    assert answer.status_code == 422, answer.text
    assert field in {error["field"] for error in answer.json()["errors"]}
    listed = await client.get("/v1/disclosures", headers=people["auditor"])
    assert listed.json()["requests"] == []


async def test_a_name_written_with_a_kanji_variant_is_kept_as_written(client, app, people):
    """A variation selector after a kanji is part of the name as it is registered (葛󠄀城,
    not 葛城): not an invisible character to refuse."""
    subject = await add_subscriber(app, number(12))
    officer = "葛\U000e0100城 警部"
    recipient = {"organisation": "Nara Prefectural Police", "officer": officer, "contact": "desk"}
    answer = await client.post(
        "/v1/disclosures",
        json={**body([subject]), "recipient": recipient},
        headers=people["operator"],
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["recipient_officer"] == officer


def access_rows(app, **where):
    found = sql(app, "SELECT staff_username, subscriber_id, action, reason FROM access_log")
    return [row._asdict() for row in found if all(getattr(row, k) == v for k, v in where.items())]


async def test_a_release_with_numbers_is_in_the_access_log(client, app, people):
    subjects = [await add_subscriber(app, number(20 + i)) for i in range(2)]
    created = await client.post("/v1/disclosures", json=body(subjects), headers=people["operator"])
    url = f"/v1/disclosures/{created.json()['id']}"
    await client.post(f"{url}/approve", json={"note": "Lawful"}, headers=people["officer_a"])
    released = await client.post(f"{url}/release", headers=people["officer_b"])
    assert released.status_code == 200
    logged = access_rows(app, action="disclosure_release")
    assert sorted(row["subscriber_id"] for row in logged) == sorted(subjects)
    assert {row["staff_username"] for row in logged} == {"po-b"}
    assert all(number(20)[3:] not in (row["reason"] or "") for row in logged)


async def test_staff_handling_a_subject_request_are_named_and_logged(client, app, people):
    subject = await add_subscriber(app, number(30))
    given = await client.post(
        f"/v1/subscribers/{subject}/provision-consents",
        json={"action": "give", "recipient": POLICE, "source": "phone"},
        headers=people["operator"],
    )
    assert given.status_code == 200
    [event] = sql(
        app, "SELECT actor FROM audit_events WHERE tag = 'subject:provision_consent:given'"
    )
    assert event.actor.startswith("staff:"), "the operator who recorded it, not the subject"
    await client.get(f"/v1/subscribers/{subject}/third-party-provision", headers=people["operator"])
    await client.get(f"/v1/subscribers/{subject}/disclosures", headers=people["operator"])
    actions = sorted(row["action"] for row in access_rows(app, subscriber_id=subject))
    assert actions == ["disclosures_read", "provision_change", "provision_read"]


@pytest.mark.parametrize("settings_overrides", [{**CHEAP_HASHING, "allowed_regions": ["JP", "KR"]}])
async def test_free_text_may_not_carry_a_subscribers_number_of_any_served_region(
    client, app, people
):
    korean = await add_subscriber(app, "+821012345678")
    answer = await client.post(
        "/v1/disclosures",
        json=body([korean], purpose="Inquiry about the holder of 010-1234-5678 (fraud ring)"),
        headers=people["operator"],
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "purpose"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("basis=gossip", "basis"),
        ("since=2026-11-22T00:00:00", "since"),
        ("since=2026-11-22T00:00:00Z&until=2026-11-21T00:00:00Z", "until"),
        ("recipient=%20", "recipient"),
        ("subject=sub%20id", "subject"),
        ("format=xml", "format"),
    ],
)
async def test_bad_export_filters_are_refused_before_anything_is_recorded(
    client, app, people, query, field
):
    answer = await client.get(f"/v1/ledger/export?{query}", headers=people["auditor"])
    assert answer.status_code == 422, answer.text
    assert [error["field"] for error in answer.json()["errors"]] == [field]
    assert sql(app, "SELECT tag FROM audit_events WHERE tag = 'ledger:exported'") == []


async def test_an_empty_ledger_cannot_be_checkpointed(client, people):
    answer = await client.post("/v1/ledger/checkpoints", headers=people["auditor"])
    assert answer.status_code == 409 and answer.json()["type"].endswith("/ledger-empty")


async def _released(client, app, people) -> int:
    subject = await add_subscriber(app, number(8))
    created = await client.post("/v1/disclosures", json=body([subject]), headers=people["operator"])
    url = f"/v1/disclosures/{created.json()['id']}"
    note = {"note": "Lawful inquiry, narrowly scoped"}
    assert (await client.post(f"{url}/approve", json=note, headers=people["officer_a"])).is_success
    released = await client.post(f"{url}/release", headers=people["officer_b"])
    return int(released.json()["ledger_seq"])


async def test_an_export_signs_the_head_first_so_a_rewritten_tail_is_found(client, app, people):
    """An entry newer than the last checkpoint was pinned by nothing in the file: changed,
    its hashes recomputed, it verified. The export signs the head first (when it is new),
    as `smsreg ledger export` does."""
    seq = await _released(client, app, people)
    assert sql(app, "SELECT count(*) FROM ledger_checkpoints") == [(0,)]
    exported = await client.get("/v1/ledger/export?format=jsonl", headers=people["auditor"])
    assert exported.status_code == 200
    assert sql(app, "SELECT seq FROM ledger_checkpoints") == [(seq,)]
    again = await client.get("/v1/ledger/export?format=jsonl", headers=people["auditor"])
    assert again.status_code == 200
    assert sql(app, "SELECT count(*) FROM ledger_checkpoints") == [(1,)], "nothing new: no more"

    keys = (await client.get("/v1/ledger/public-keys")).json()["keys"]
    trusted = parse_public_keys(f"{key['key_id']}:{key['public_key']}" for key in keys)
    records = [orjson.loads(line) for line in exported.text.splitlines() if line]
    assert verify_lines([orjson.dumps(r) for r in records], public_keys=trusted).ok
    entry = next(r for r in records if r["type"] == "entry" and r["seq"] == seq)
    entry["purpose"] = "Something else entirely"
    entry["entry_hash"] = chain.entry_hash(
        seq=seq,
        prev_hash=entry["prev_hash"],
        content_sha256=chain.content_hash(chain.hashed_content(entry)),
    )
    forged = verify_lines([orjson.dumps(r) for r in records], public_keys=trusted)
    assert not forged.ok
    # Taking the checkpoint out with it does not help: then nothing vouches for the file.
    unsigned = [r for r in records if r["type"] != "checkpoint"]
    stripped = verify_lines([orjson.dumps(r) for r in unsigned], public_keys=trusted)
    assert stripped.problem is not None and stripped.problem.kind == "uncovered"


async def test_an_export_whose_head_cannot_be_witnessed_is_refused(client, app, people, tmp_path):
    await _released(client, app, people)
    app.state.ctx.settings.ledger_witness = tmp_path / "no-such-dir" / "witness.jsonl"
    for answer in (
        await client.get("/v1/ledger/export?format=jsonl", headers=people["auditor"]),
        await client.post("/v1/ledger/checkpoints", headers=people["auditor"]),
    ):
        assert answer.status_code == 503, answer.text
        assert answer.json()["type"].endswith("/ledger-witness-unavailable")
    assert sql(app, "SELECT count(*) FROM ledger_checkpoints") == [(0,)]


async def test_a_recipient_named_with_ideographic_spaces_is_taken_everywhere(client, app, people):
    """The name a ledger entry shows, pasted as it is (Japanese is typed with U+3000 between
    words), was refused by the export filter and by a subject's provision consent while
    the request that names it took it."""
    shinjuku = "警視庁\u3000新宿警察署"
    subject = await add_subscriber(app, number(14))
    given = await client.post(
        f"/v1/subscribers/{subject}/provision-consents",
        json={"action": "give", "recipient": shinjuku, "source": "letter"},
        headers=people["operator"],
    )
    assert given.status_code == 200, given.text
    recipient = {"organisation": shinjuku, "officer": "Inspector Sato", "contact": "desk"}
    request = body([subject], legal_basis="consent", request_reference=None, recipient=recipient)
    created = await client.post("/v1/disclosures", json=request, headers=people["operator"])
    assert created.status_code == 201, created.text  # the consent matched the name
    url = created.headers["Location"]
    await client.post(f"{url}/approve", json={"note": "Consented"}, headers=people["officer_a"])
    assert (await client.post(f"{url}/release", headers=people["officer_b"])).status_code == 200
    export = await client.get(
        "/v1/ledger/export", params={"recipient": shinjuku}, headers=people["auditor"]
    )
    assert export.status_code == 200, export.text
    entries = [json.loads(line) for line in export.text.splitlines()]
    assert [e["recipient_organisation"] for e in entries if "recipient_organisation" in e] == [
        shinjuku
    ]
