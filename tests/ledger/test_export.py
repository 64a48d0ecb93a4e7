"""Exports: complete and filtered, JSON Lines and CSV, verified offline; tampered files fail."""

from __future__ import annotations

import base64
import csv
import io
import json
import re

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from app.ledger import checkpoints, export, provision, signing, verify
from app.ledger.audit_schemas import ExportQuery
from tests.conftest import call
from tests.fixtures.fakes import START
from tests.ledger.conftest import release, release_many
from tests.ledger.test_tamper import N


@pytest.fixture
async def ledger(app, subjects, clock):
    await release_many(app, subjects, N, clock)
    await call(app, checkpoints.create)
    return app


async def _export(db, ctx, fmt="jsonl", **filters) -> bytes:
    out = io.BytesIO()
    await export.write(db, ctx, ExportQuery(format=fmt, **filters), out)
    return out.getvalue()


_STATED = object()


def _trusted(ctx):
    return signing.ring(ctx.settings).public


def _verify(data: bytes, ctx, trusted=True, asked=_STATED) -> verify.Report:
    """As an auditor verifies: with the keys pinned, and naming the filter they asked for
    (by default the one the file states: the tests of that check say otherwise)."""
    if asked is _STATED:
        first = data.splitlines()[0] if data else b""
        stated = orjson.loads(first).get("filters") if first.startswith(b"{") else None
        if first.startswith(b"record_type"):  # CSV: the header's fields are in its meta
            row = next(csv.DictReader(io.StringIO(data.decode())))
            stated = json.loads(row["meta"]).get("filters")
        asked = {k: v for k, v in (stated or {}).items() if v is not None} or None
    return verify.verify_lines(
        io.BytesIO(data), public_keys=_trusted(ctx) if trusted else None, filters=asked
    )


def _jsonl(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines()]


def _lines(records: list[dict]) -> bytes:
    return b"".join(orjson.dumps(record) + b"\n" for record in records)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_a_complete_export_verifies_offline(ledger, db, ctx, fmt):
    data = await _export(db, ctx, fmt)
    report = _verify(data, ctx)
    assert report.ok, report.text()
    assert (report.entries, report.links, report.complete, report.covered_to) == (N, 0, True, N)
    assert report.text().startswith("OK: 6 entries")


async def test_the_jsonl_layout(ledger, db, ctx):
    records = _jsonl(await _export(db, ctx))
    kinds = [record["type"] for record in records]
    assert kinds == ["header", "key", "checkpoint", *["entry"] * N, "end"]
    header = records[0]
    assert header["format"] == "smsreg-ledger-export/1" and header["complete"] is True
    assert records[1]["public_key"] == signing.ring(ctx.settings).public_raw()[records[1]["key_id"]]
    assert records[-1] == {"type": "end", "entries": N, "links": 0}


async def test_exports_hold_no_number(ledger, db, ctx):
    for fmt in ("jsonl", "csv"):
        text = (await _export(db, ctx, fmt)).decode()
        for i in range(1, 4):
            assert f"9000000{i:02d}" not in text


async def test_embedded_keys_prove_consistency_but_pinned_keys_prove_origin(ledger, db, ctx):
    records = _jsonl(await _export(db, ctx))
    # A forger re-signs the checkpoint with their own key and swaps the key record.
    forger = Ed25519PrivateKey.generate()
    key_id = records[1]["key_id"]
    records[1]["public_key"] = signing.public_key_b64(forger.public_key())
    cp = records[2]
    message = signing.checkpoint_message(
        kind=cp["kind"],
        seq=cp["seq"],
        head_hash=cp["head_hash"],
        created_at=cp["created_at"],
        key_id=key_id,
    )
    cp["signature"] = base64.b64encode(forger.sign(message)).decode()
    data = _lines(records)
    loose = _verify(data, ctx, trusted=False)
    assert loose.ok and any("not who signed it" in note for note in loose.notes)
    pinned = _verify(data, ctx)
    assert (pinned.problem.seq, pinned.problem.kind) == (N, "bad-signature")


def _entry_index(records, seq):
    return next(
        i for i, r in enumerate(records) if r["type"] in ("entry", "link") and r["seq"] == seq
    )


async def test_file_edit_delete_swap_cut_and_forge_are_found(ledger, db, ctx):
    base = _jsonl(await _export(db, ctx))

    edited = [dict(r) for r in base]
    edited[_entry_index(edited, 3)]["purpose"] = "another story"
    assert (_verify(_lines(edited), ctx).problem.seq, "changed") == (3, "changed")
    assert _verify(_lines(edited), ctx).problem.kind == "changed"

    deleted = [r for r in base if not (r["type"] == "entry" and r["seq"] == 3)]
    problem = _verify(_lines(deleted), ctx).problem
    assert (problem.seq, problem.kind) == (3, "removed")

    swapped = list(base)
    i, j = _entry_index(swapped, 3), _entry_index(swapped, 4)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    problem = _verify(_lines(swapped), ctx).problem
    assert (problem.seq, problem.kind) == (3, "reordered")

    cut = [r for r in base if not (r["type"] == "entry" and r["seq"] >= 5) and r["type"] != "end"]
    problem = _verify(_lines(cut), ctx).problem
    assert (problem.seq, problem.kind) == (5, "truncated")

    no_end = base[:-1]
    problem = _verify(_lines(no_end), ctx).problem
    assert (problem.seq, problem.kind) == (N + 1, "truncated")

    forged = [dict(r) for r in base]
    forged[2]["head_hash"] = "00" * 32
    problem = _verify(_lines(forged), ctx).problem
    assert (problem.seq, problem.kind) == (N, "bad-signature")


async def test_a_copied_checkpoint_is_malformed_not_counted_twice(ledger, db, ctx):
    """A checkpoint record copied in the file verified, reported as two checkpoints."""
    records = _jsonl(await _export(db, ctx))
    at = next(i for i, r in enumerate(records) if r["type"] == "checkpoint")
    for copy in (records[at], {**records[at], "id": 99999}):  # the id is not signed
        copied = [*records[: at + 1], copy, *records[at + 1 :]]
        report = _verify(_lines(copied), ctx)
        assert report.problem is not None and report.problem.kind == "malformed", report.text()
        assert "repeats a checkpoint" in report.problem.detail


async def test_a_stripped_export_says_it_holds_no_entry(ledger, db, ctx):
    """Its entries and checkpoints gone, the end's counts fixed: the message said None."""
    records = _jsonl(await _export(db, ctx))
    stripped = [r for r in records if r["type"] not in ("entry", "link", "checkpoint")]
    end = stripped[-1]
    for name in ("entries", "links", "checkpoints"):
        if name in end:
            end[name] = 0
    report = _verify(_lines(stripped), ctx)
    assert report.problem is not None and "None" not in report.text(), report.text()


@pytest.mark.parametrize(
    ("field", "value"), [("last_seq", N + 4), ("head_seq", N + 6), ("first_seq", 2)]
)
async def test_a_header_that_claims_another_range_is_found(ledger, db, ctx, field, value):
    """The header's range was never checked: edited to claim more (or less) than the
    file holds, the export still verified."""
    records = [dict(r) for r in _jsonl(await _export(db, ctx))]
    assert _verify(_lines(records), ctx).ok
    records[0][field] = value
    problem = _verify(_lines(records), ctx).problem
    assert problem is not None and problem.kind == "truncated"


async def test_csv_tampering_is_found(ledger, db, ctx):
    rows = list(csv.reader(io.StringIO((await _export(db, ctx, "csv")).decode())))
    columns = rows[0]

    def seq_row(seq: int) -> int:
        return next(
            i
            for i, row in enumerate(rows)
            if row[0] == "entry" and row[columns.index("seq")] == str(seq)
        )

    def render(table) -> bytes:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(table)
        return out.getvalue().encode()

    edited = [list(row) for row in rows]
    edited[seq_row(2)][columns.index("legal_basis")] = "consent"
    problem = _verify(render(edited), ctx).problem
    assert (problem.seq, problem.kind) == (2, "changed")

    swapped = [list(row) for row in rows]
    a, b = seq_row(4), seq_row(5)
    swapped[a], swapped[b] = swapped[b], swapped[a]
    problem = _verify(render(swapped), ctx).problem
    assert (problem.seq, problem.kind) == (4, "reordered")

    deleted = [row for i, row in enumerate(rows) if i != seq_row(5)]
    problem = _verify(render(deleted), ctx).problem
    assert (problem.seq, problem.kind) == (5, "removed")

    cut = [row for i, row in enumerate(rows) if i != seq_row(6)]
    problem = _verify(render(cut), ctx).problem
    assert (problem.seq, problem.kind) == (6, "truncated")


async def test_csv_defuses_formulas_and_still_verifies(app, db, ctx, subjects):
    await release(app, subjects[:1], purpose='=HYPERLINK("http://x") for the case')
    await call(app, checkpoints.create)
    data = await _export(db, ctx, "csv")
    assert b"'=HYPERLINK" in data
    assert _verify(data, ctx).ok
    # The guard taken away (a live formula in the auditor's sheet), or a quote put before
    # a cell that had none (the sheet shows a text other than the one hashed): each
    # verified, for the reader dropped a leading quote wherever it found one.
    for forged in (
        data.replace(b"'=HYPERLINK", b"=HYPERLINK"),
        data.replace(b",dsr_", b",'dsr_", 1),
    ):
        assert forged != data
        problem = _verify(forged, ctx).problem
        assert problem is not None and problem.kind == "malformed", problem


async def test_a_jsonl_record_naming_a_field_twice_is_malformed(ledger, db, ctx):
    """A record naming a field twice verified: the verifier checked the last value, and a
    tool that shows the first showed a forged one."""
    data = await _export(db, ctx)
    lines = data.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith(b'{"type":"entry"'))
    entry = lines[at]
    lines[at] = entry.replace(b'{"type":"entry",', b'{"type":"entry","purpose":"forged",', 1)
    report = _verify(b"".join(lines), ctx)
    assert report.problem is not None and report.problem.kind == "malformed", report.text()
    assert "names a field twice" in report.problem.detail
    # Nor does that check let through what the strict reader refuses: a number too large
    # for a float (it crashed the verifier) or a lone surrogate.
    for odd in (
        re.sub(rb'"seq":\d+', b'"seq":1e400', entry, count=1),
        re.sub(rb'"purpose":"[^"]*"', lambda _: rb'"purpose":"\ud800"', entry, count=1),
    ):
        assert odd != entry
        lines[at] = odd
        report = _verify(b"".join(lines), ctx)
        assert report.problem is not None and report.problem.kind == "malformed", report.text()
        assert "is not JSON" in report.problem.detail


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_an_overridden_stop_is_exported_and_its_removal_found(app, db, ctx, subjects, fmt):
    await call(app, provision.stop_provision, subscriber_id=subjects[0], source="web")
    await release(app, subjects[:1])  # law: goes on, flagged
    await release(app, subjects[1:2])  # nobody stopped: no flag, hashed as before
    await call(app, checkpoints.create)
    data = await _export(db, ctx, fmt)
    assert _verify(data, ctx).ok, _verify(data, ctx).text()
    flag = orjson.dumps([subjects[0]]).decode()
    text = data.decode()
    assert flag in text or flag.replace('"', '""') in text
    unflagged = text.replace(flag.replace('"', '""') if fmt == "csv" else flag, "")
    if fmt == "jsonl":
        unflagged = unflagged.replace(',"stop_overridden":', "")
    assert not _verify(unflagged.encode(), ctx).ok


@pytest.mark.parametrize(
    ("filters", "selected"),
    [
        ({"basis": "law"}, [2, 4]),
        ({"recipient": "ＫＡＮＡＧＡＷＡ prefectural police"}, [2, 4]),
        ({"since": START.replace(minute=1), "until": START.replace(minute=3)}, [2, 3]),
    ],
)
async def test_filtered_exports_prove_each_selected_entry(
    app, db, ctx, subjects, clock, filters, selected
):
    for i in range(1, 6):
        if i in (2, 4):
            await release(
                app,
                subjects[:1],
                legal_basis="law",
                recipient={
                    "organisation": "Kanagawa Prefectural Police",
                    "officer": "Sgt. Ito",
                    "contact": "045-000-0000",
                },
            )
        else:
            await release(app, subjects[1:2])
        clock.advance(minutes=1)
    await call(app, checkpoints.create)
    for fmt in ("jsonl", "csv"):
        data = await _export(db, ctx, fmt, **filters)
        report = _verify(data, ctx)
        assert report.ok, report.text()
        assert not report.complete and report.entries == len(selected)
        assert report.covered_to == 5
        if fmt == "jsonl":
            records = _jsonl(data)
            assert [r["seq"] for r in records if r["type"] == "entry"] == selected
            links = [r for r in records if r["type"] == "link"]
            assert all(
                set(r) == {"type", "seq", "prev_hash", "content_sha256", "entry_hash"}
                for r in links
            )


async def test_a_filtered_export_by_subject_and_its_tampering(app, db, ctx, subjects, clock):
    await release_many(app, subjects, N, clock)  # subject k in entries k, k+3
    await call(app, checkpoints.create)
    data = await _export(db, ctx, subject=subjects[1])
    records = _jsonl(data)
    assert [r["seq"] for r in records if r["type"] == "entry"] == [2, 5]
    assert [r["seq"] for r in records if r["type"] == "link"] == [3, 4, 6]
    assert _verify(data, ctx).ok

    edited = [dict(r) for r in records]
    edited[_entry_index(edited, 5)]["approved_by"] = "stf_nobody"
    assert (_verify(_lines(edited), ctx).problem.seq, "changed") == (5, "changed")

    relinked = [dict(r) for r in records]
    relinked[_entry_index(relinked, 3)]["content_sha256"] = "11" * 32
    problem = _verify(_lines(relinked), ctx).problem
    assert (problem.seq, problem.kind) == (3, "changed")


async def test_a_complete_export_with_an_entry_swapped_for_its_link_is_broken(
    app, db, ctx, subjects, clock
):
    """An entry of a complete export replaced by its link (taken from a filtered export)
    and the end record's counts mended: the chain still joins up, but the file says it
    holds every entry and hides one."""
    await release_many(app, subjects, N, clock)
    await call(app, checkpoints.create)
    complete = _jsonl(await _export(db, ctx))
    filtered = _jsonl(await _export(db, ctx, subject=subjects[1]))
    [link] = [r for r in filtered if r["type"] == "link" and r["seq"] == 3]
    hidden = [link if r.get("seq") == 3 and r["type"] == "entry" else r for r in complete]
    hidden[-1] = {**hidden[-1], "entries": N - 1, "links": 1}
    report = _verify(_lines(hidden), ctx)
    assert not report.ok
    assert (report.problem.seq, report.problem.kind) == (3, "removed")


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"", "the export is empty"),
        (b"\n\n", "the export is empty"),
        (b"hello world\n", "neither JSON Lines nor its CSV"),
        (b"<html>502 Bad Gateway</html>\n", "neither JSON Lines nor its CSV"),
    ],
)
def test_a_file_that_is_no_export_is_called_what_it_is(ctx, data, said):
    report = _verify(data, ctx)
    assert not report.ok and report.problem.kind == "malformed"
    assert said in report.problem.detail
    assert "CSV header" not in report.text()


@pytest.mark.parametrize("kind", ["entry", "link"])
async def test_a_field_added_to_an_exported_record_is_found(app, db, ctx, subjects, clock, kind):
    """A field beside the ones an export writes is not under the entry's hash: a forged
    note ("approved by the court") would read as part of the entry."""
    await release_many(app, subjects, N, clock)
    await call(app, checkpoints.create)
    records = _jsonl(await _export(db, ctx, subject=subjects[1]))
    at = next(i for i, r in enumerate(records) if r["type"] == kind)
    records[at] = {**records[at], "note": "approved by the court"}
    report = _verify(_lines(records), ctx)
    assert not report.ok
    assert (report.problem.seq, report.problem.kind) == (records[at]["seq"], "changed")
    assert "note" in report.problem.detail


async def test_a_filtered_export_past_the_newest_checkpoint_says_so(app, db, ctx, subjects, clock):
    await release_many(app, subjects, 2, clock)
    out = io.BytesIO()
    summary = await export.write(db, ctx, ExportQuery(basis="investigation_compelled"), out)
    # Nothing signed yet: nothing is exported, and the note says why.
    assert summary.entries == 0
    assert any("from seq 1 on are under no signed checkpoint" in n for n in summary.notes)
    report = _verify(out.getvalue(), ctx)
    assert not report.ok and report.covered_to is None
    assert report.problem is not None and report.problem.kind == "uncovered"
    assert report.text().startswith("UNPROVEN at seq 1: uncovered")


async def test_an_empty_ledger_exports_but_proves_nothing(app, db, ctx):
    """An empty ledger has no head to sign: its export is well formed, and holds nothing
    that could tell it from an export someone emptied."""
    data = await _export(db, ctx)
    assert [r["type"] for r in _jsonl(data)] == ["header", "key", "end"]
    report = _verify(data, ctx)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (1, "uncovered")


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"since": START, "until": START}, "until"),
        ({"since": START.replace(tzinfo=None)}, "since"),
        ({"basis": "gossip"}, "basis"),
        ({"recipient": " "}, "recipient"),
        ({"subject": "sub id with spaces"}, "subject"),
        ({"format": "xml"}, "format"),
    ],
)
def test_bad_filters_are_refused_before_anything_is_read(filters, field):
    # The one model both GET /v1/ledger/export and `smsreg ledger export` validate with.
    with pytest.raises(ValidationError) as caught:
        ExportQuery.model_validate(filters)
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]


@pytest.mark.parametrize(
    "data",
    [b"", b"not json\n", b'{"type":"header","format":"other"}\n', b"a,b,c\n1,2,3\n"],
)
def test_files_that_are_not_exports_are_malformed(data, ctx):
    report = verify.verify_lines(io.BytesIO(data), public_keys=_trusted(ctx))
    assert report.problem is not None and report.problem.kind == "malformed"


async def test_public_keys_from_the_endpoint_json_file(ledger, db, ctx, tmp_path):
    path = tmp_path / "keys.json"
    ring = signing.ring(ctx.settings)
    path.write_text(
        json.dumps({"keys": [{"key_id": k, "public_key": v} for k, v in ring.public_raw().items()]})
    )
    keys = verify.parse_public_keys([str(path)])
    assert set(keys) == set(ring.public_raw())
    assert verify.verify_lines(io.BytesIO(await _export(db, ctx)), public_keys=keys).ok
    with pytest.raises(ValueError):
        verify.parse_public_keys(["no-colon-here"])


async def test_auditor_services_record_who_verified_and_exported(ledger, db, ctx):
    from app.ledger import auditor
    from tests.ledger.conftest import sql

    report = await call(ledger, auditor.verify_ledger, actor="staff:stf_auditor1")
    assert report.ok and report.entries == N
    made = await call(
        ledger,
        auditor.export_ledger,
        db=db,
        actor="staff:stf_auditor1",
        query=ExportQuery(format="csv"),
    )
    assert made.headers == {}  # nothing held back
    assert _verify(b"".join([chunk async for chunk in made.chunks]), ctx).ok
    tags = [
        row.tag
        for row in sql(
            ledger, "SELECT tag, actor FROM audit_events WHERE actor = 'staff:stf_auditor1'"
        )
    ]
    assert tags == ["ledger:verified", "ledger:exported"]


async def test_a_complete_export_runs_to_the_newest_signed_head(app, db, ctx, subjects, clock):
    """An entry appended after the head was signed (between an export's checkpoint and its
    read) is left out, said in a note, and in the next export: every entry a complete
    export holds is under a signed checkpoint, so the file verifies."""
    await release_many(app, subjects, 3, clock)
    assert (await call(app, checkpoints.create)).seq == 3
    await release(app, [subjects[0]])  # seq 4, signed by nothing yet
    out = io.BytesIO()
    summary = await export.write(db, ctx, ExportQuery(), out)
    assert (summary.first_seq, summary.last_seq, summary.entries) == (1, 3, 3)
    assert any("from seq 4 on are under no signed checkpoint" in n for n in summary.notes)
    report = _verify(out.getvalue(), ctx)
    assert report.ok, report.text()
    assert (report.last_seq, report.covered_to) == (3, 3)
    # A filtered export too: seq 4 names subjects[0], and is left out as well.
    out = io.BytesIO()
    summary = await export.write(db, ctx, ExportQuery(subject=subjects[0]), out)
    assert summary.last_seq == 3 and summary.notes
    assert _verify(out.getvalue(), ctx).ok

    await call(app, checkpoints.create)
    summary = await export.write(db, ctx, ExportQuery(), io.BytesIO())
    assert (summary.last_seq, summary.notes) == (4, [])


async def test_a_filtered_export_is_verified_only_as_one_asked_for(app, db, ctx, subjects, clock):
    """Whoever edits a file can call it filtered and put links in place of entries: so a
    filtered export is refused unless the auditor says they asked for one, and every
    entry it shows must match the filter it states."""
    await release_many(app, subjects, N, clock)  # subject k in entries k, k+3
    await call(app, checkpoints.create)
    data = await _export(db, ctx, subject=subjects[1])
    refused = _verify(data, ctx, asked=None)
    assert refused.problem is not None and (refused.problem.seq, refused.problem.kind) == (
        1,
        "filtered",
    )
    assert f"subject_id={subjects[1]}" in refused.text()
    assert _verify(data, ctx).ok

    # A complete export called filtered by another filter, entry 2 swapped for its link:
    # the entries it still shows do not match what it claims to select.
    complete = _jsonl(await _export(db, ctx))
    doctored = []
    for record in complete:
        if record["type"] == "header":
            record = {**record, "complete": False,
                      "filters": {**record["filters"], "legal_basis": "law"}}  # fmt: skip
        elif record["type"] == "entry" and record["seq"] == 2:
            record = {
                "type": "link", "seq": 2, "prev_hash": record["prev_hash"],
                "content_sha256": _content(record), "entry_hash": record["entry_hash"],
            }  # fmt: skip
        elif record["type"] == "end":
            record = {**record, "entries": record["entries"] - 1, "links": 1}
        doctored.append(record)
    problem = _verify(_lines(doctored), ctx).problem
    assert problem is not None and (problem.seq, problem.kind) == (1, "filtered")
    # Called filtered by a filter every shown entry matches: only the filter the auditor
    # asked for gives it away.
    since = {**doctored[0], "filters": {**complete[0]["filters"],
                                        "since": "1970-01-01T00:00:00+00:00"}}  # fmt: skip
    relabelled = _lines([since, *doctored[1:]])
    problem = _verify(relabelled, ctx, asked={"subject_id": subjects[1]}).problem
    assert problem is not None and (problem.seq, problem.kind) == (1, "filtered")
    assert "not the one asked for" in problem.detail
    asked = {"subject_id": subjects[1]}
    assert _verify(data, ctx, asked=asked).ok  # the genuine export, verified as asked
    # Filters the export never writes are no export's.
    odd = [{**complete[0], "complete": False, "filters": {"colour": "red"}}, *complete[1:]]
    assert _verify(_lines(odd), ctx).problem.kind == "malformed"


def _content(entry: dict) -> str:
    from app.ledger import chain

    return chain.content_hash(chain.hashed_content(entry))


def test_signatures_and_keys_in_csv_are_guarded_and_read_back():
    """Base64 starts with "+" about once in 64 signatures: written bare, a spreadsheet
    took the cell for a formula. Guarded as every other cell; a bare one (an export made
    before) still reads."""
    from app.ledger.export_format import CSV_COLUMNS, csv_row
    from app.ledger.verify.readers import csv_records

    checkpoint = {
        "type": "checkpoint", "id": 1, "kind": "head", "seq": 3, "head_hash": "ab" * 32,
        "created_at": "2026-12-07T00:00:00.000000+00:00", "key_id": "k1",
        "signature": "+R9cLflUEDJCDhIiABvK" + "A" * 66 + "==",
    }  # fmt: skip
    key = {"type": "key", "key_id": "k1", "algorithm": "ed25519", "public_key": "+" + "B" * 43}
    rows = [csv_row(checkpoint), csv_row(key)]
    assert rows[0][CSV_COLUMNS.index("signature")].startswith("'+")
    assert rows[1][CSV_COLUMNS.index("public_key")].startswith("'+")

    def read(table: list[list[str]]) -> list[dict]:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([list(CSV_COLUMNS), *table])
        return list(csv_records([out.getvalue().encode()]))

    read_back = read(rows)
    assert read_back[0]["signature"] == checkpoint["signature"]
    assert read_back[1]["public_key"] == key["public_key"]
    bare = [[cell.removeprefix("'") for cell in row] for row in rows]
    assert read(bare) == read_back


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_a_copy_saved_with_a_byte_order_mark_still_verifies(ledger, db, ctx, fmt):
    """Saved again by a spreadsheet as "CSV UTF-8" (a BOM first), an export was called
    "not an smsreg ledger export": the mark holds no value."""
    data = await _export(db, ctx, fmt)
    assert _verify(b"\xef\xbb\xbf" + data, ctx).ok
