"""Properties of the chain walker, on exports built in memory: any intact chain verifies,
and one edit, removal or swap anywhere is found at its own position."""

from __future__ import annotations

import base64
import datetime as dt

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from app.ledger import canonical, chain, signing
from app.ledger.export_format import EXPORT_FORMAT, entry_record
from app.ledger.verify import verify_lines
from app.models.ledger import LedgerEntry

START = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20)


def _entries(purposes: list[str]) -> list[dict]:
    records, prev = [], chain.GENESIS
    for seq, purpose in enumerate(purposes, start=1):
        entry = LedgerEntry(
            seq=seq,
            recorded_at=START + dt.timedelta(minutes=seq),
            request_id=f"dsr_{seq}",
            recipient_organisation="Police",
            recipient_officer="Sato",
            recipient_contact="desk",
            recipient_key="police",
            legal_basis="law",
            purpose=purpose,
            request_reference="ref",
            data_items=["subscriber_id"],
            subject_ids=[f"sub_{seq}"],
            requested_by="stf_a",
            approved_by="stf_b",
            released_by="stf_c",
            necessity_review="needed",
            approval_note="ok",
            consent=None,
            package_sha256="0" * 64,
            package_csv_sha256="0" * 64,
            prev_hash=prev,
            entry_hash="",
        )
        entry.entry_hash = prev = chain.hash_entry(entry)
        records.append(entry_record(entry))
    return records


# The export signs its head first: a checkpoint of the intact chain's last entry, which
# an edit, a removal or a swap made afterwards does not change.
_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
TRUSTED = {"k1": _KEY.public_key()}


def _checkpoint(head: dict) -> dict:
    at = canonical.timestamp(START)
    message = signing.checkpoint_message(
        kind="head", seq=head["seq"], head_hash=head["entry_hash"], created_at=at, key_id="k1"
    )
    return {
        "type": "checkpoint", "id": 1, "kind": "head", "seq": head["seq"],
        "head_hash": head["entry_hash"], "created_at": at, "key_id": "k1",
        "signature": base64.b64encode(_KEY.sign(message)).decode(),
    }  # fmt: skip


def _export(entries: list[dict], head: dict, *, ends: int | None = None) -> list[bytes]:
    last = len(entries) or None
    header = {
        "type": "header",
        "format": EXPORT_FORMAT,
        "complete": True,
        "first_seq": 1 if entries else None,
        "last_seq": last,
        "head_seq": last or 0,
    }
    end = {"type": "end", "entries": len(entries) if ends is None else ends, "links": 0}
    records = (header, _checkpoint(head), *entries, end)
    return [orjson.dumps(record) + b"\n" for record in records]


@st.composite
def chains(draw: st.DrawFn) -> list[dict]:
    return _entries(draw(st.lists(_TEXT, min_size=2, max_size=12)))


@settings(max_examples=60, deadline=None)
@given(chains())
def test_an_intact_chain_verifies(entries):
    report = verify_lines(_export(entries, entries[-1]), public_keys=TRUSTED)
    assert report.ok, report.text()
    assert (report.entries, report.first_seq, report.last_seq) == (len(entries), 1, len(entries))


@settings(max_examples=60, deadline=None)
@given(chains(), st.data())
def test_an_edit_is_found_at_the_edited_entry(entries, data):
    seq = data.draw(st.integers(1, len(entries)))
    field = data.draw(st.sampled_from(["purpose", "legal_basis", "approved_by", "subject_ids"]))
    edited = [dict(record) for record in entries]
    edited[seq - 1][field] = ["sub_other"] if field == "subject_ids" else "rewritten"
    problem = verify_lines(_export(edited, entries[-1]), public_keys=TRUSTED).problem
    assert problem is not None and (problem.seq, problem.kind) == (seq, "changed")


@settings(max_examples=60, deadline=None)
@given(chains(), st.data())
def test_a_removal_is_found_where_the_gap_begins(entries, data):
    seq = data.draw(st.integers(1, len(entries) - 1))  # the last one cut is a truncation
    kept = [record for record in entries if record["seq"] != seq]
    problem = verify_lines(_export(kept, entries[-1]), public_keys=TRUSTED).problem
    assert problem is not None and (problem.seq, problem.kind) == (seq, "removed")


@settings(max_examples=60, deadline=None)
@given(chains(), st.data())
def test_a_swap_of_neighbours_is_found_as_reordered(entries, data):
    seq = data.draw(st.integers(1, len(entries) - 1))
    swapped = list(entries)
    swapped[seq - 1], swapped[seq] = swapped[seq], swapped[seq - 1]
    problem = verify_lines(_export(swapped, entries[-1]), public_keys=TRUSTED).problem
    assert problem is not None and (problem.seq, problem.kind) == (seq, "reordered")


@settings(max_examples=60, deadline=None)
@given(chains(), st.data())
def test_a_cut_tail_is_found_by_the_end_record(entries, data):
    keep = data.draw(st.integers(1, len(entries) - 1))
    problem = verify_lines(
        _export(entries[:keep], entries[-1], ends=len(entries)), public_keys=TRUSTED
    ).problem
    assert problem is not None and (problem.seq, problem.kind) == (keep + 1, "truncated")
