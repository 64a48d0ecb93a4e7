"""Tampering straight in SQL, with the triggers off as a database owner could: each kind
is found at the right position, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
import io

import orjson
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.ledger import chain, checkpoints, signing, verify
from app.ledger.errors import LedgerCut, LedgerUncovered, UnbackedEntry
from app.models.ledger import LedgerEntry, LedgerEntrySubject
from app.models.types import table
from tests.conftest import call, count_rows, sync_engine
from tests.ledger.conftest import release_many, requested, sql, tampering, verified

N = 6


@pytest.fixture
async def ledger(app, subjects, clock):
    """Six entries and a signed checkpoint at the head."""
    await release_many(app, subjects, N, clock)
    assert (await call(app, checkpoints.create)).seq == N
    report = await verified(app)
    assert report.ok and report.entries == N and report.covered_to == N
    return app


async def _problem(app) -> verify.Problem:
    report = await verified(app)
    assert not report.ok, report.text()
    verdict = "UNPROVEN" if report.problem.kind == "uncovered" else "BROKEN"
    assert report.text().startswith(f"{verdict} at seq {report.problem.seq}: {report.problem.kind}")
    return report.problem


async def test_editing_one_field_is_found_at_that_entry(ledger, ctx):
    with tampering(ledger) as conn:
        conn.execute(sa.text("UPDATE ledger_entries SET purpose = 'nothing to see' WHERE seq = 3"))
    problem = await _problem(ledger)
    assert (problem.seq, problem.kind) == (3, "changed")


@pytest.mark.parametrize(
    "column", ["recipient_organisation", "legal_basis", "request_reference", "approved_by"]
)
async def test_every_recorded_field_is_covered(ledger, column):
    with tampering(ledger) as conn:
        conn.execute(sa.text(f"UPDATE ledger_entries SET {column} = 'x' WHERE seq = 2"))  # noqa: S608
    assert ((await _problem(ledger)).seq, (await _problem(ledger)).kind) == (2, "changed")


async def test_editing_the_time_is_found(ledger, ctx):
    with tampering(ledger) as conn:
        conn.execute(
            sa.text("UPDATE ledger_entries SET recorded_at = :t WHERE seq = 4"),
            {"t": "2026-01-01 00:00:00.000000"}
            if ledger.state.db.sqlite
            else {"t": "2026-01-01T00:00:00+00:00"},
        )
    assert ((await _problem(ledger)).seq, (await _problem(ledger)).kind) == (4, "changed")


async def test_deleting_a_row_is_found_at_its_position(ledger, ctx):
    with tampering(ledger) as conn:
        conn.execute(sa.text("DELETE FROM ledger_entries WHERE seq = 3"))
    problem = await _problem(ledger)
    assert (problem.seq, problem.kind) == (3, "removed")


async def test_deleting_the_start_without_a_signed_anchor_is_found(ledger, ctx):
    with tampering(ledger) as conn:
        conn.execute(sa.text("DELETE FROM ledger_entry_subjects WHERE seq <= 2"))
        conn.execute(sa.text("DELETE FROM ledger_entries WHERE seq <= 2"))
    problem = await _problem(ledger)
    assert (problem.seq, problem.kind) == (1, "removed")


async def test_swapping_two_rows_is_found_as_reordered(ledger, ctx):
    with tampering(ledger) as conn:
        conn.execute(sa.text("UPDATE ledger_entries SET seq = -1 WHERE seq = 3"))
        conn.execute(sa.text("UPDATE ledger_entries SET seq = 3 WHERE seq = 4"))
        conn.execute(sa.text("UPDATE ledger_entries SET seq = 4 WHERE seq = -1"))
    problem = await _problem(ledger)
    assert (problem.seq, problem.kind) == (3, "reordered")


async def test_cutting_the_tail_is_found_as_truncated(ledger, ctx):
    with tampering(ledger) as conn:
        conn.execute(sa.text("DELETE FROM ledger_entries WHERE seq >= 5"))
    problem = await _problem(ledger)
    assert (problem.seq, problem.kind) == (5, "truncated")


async def test_emptying_the_ledger_is_found_as_truncated(ledger, ctx):
    with tampering(ledger) as conn:
        conn.execute(sa.text("DELETE FROM ledger_entry_subjects"))
        conn.execute(sa.text("DELETE FROM ledger_entries"))
    problem = await _problem(ledger)
    assert (problem.seq, problem.kind) == (1, "truncated")


async def test_a_forged_checkpoint_signature_is_found(ledger, ctx):
    with tampering(ledger) as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ledger_checkpoints (kind, seq, head_hash, created_at, key_id, "
                "signature) SELECT 'head', 4, entry_hash, recorded_at, :key_id, :sig "
                "FROM ledger_entries WHERE seq = 4"
            ),
            {
                "key_id": signing.ring(ctx.settings).active_id,
                "sig": base64.b64encode(b"\x00" * 64).decode(),
            },
        )
    problem = await _problem(ledger)
    assert (problem.seq, problem.kind) == (4, "bad-signature")


async def test_a_checkpoint_signed_with_another_key_is_found(ledger, ctx):
    """An attacker's own key under the real key id: the signature does not verify."""
    attacker = Ed25519PrivateKey.generate()
    active = signing.ring(ctx.settings).active_id
    with tampering(ledger) as conn:
        row = conn.execute(
            sa.text("SELECT entry_hash, recorded_at FROM ledger_entries WHERE seq = 2")
        ).one()
        created = "2026-11-22T00:10:00.000000+00:00"
        message = signing.checkpoint_message(
            kind="head", seq=2, head_hash=row.entry_hash, created_at=created, key_id=active
        )
        conn.execute(
            sa.text(
                "INSERT INTO ledger_checkpoints (kind, seq, head_hash, created_at, key_id, "
                "signature) VALUES ('head', 2, :h, :c, :k, :s)"
            ),
            {
                "h": row.entry_hash,
                "c": "2026-11-22 00:10:00.000000" if ledger.state.db.sqlite else created,
                "k": active,
                "s": base64.b64encode(attacker.sign(message)).decode(),
            },
        )
    problem = await _problem(ledger)
    assert (problem.seq, problem.kind) == (2, "bad-signature")


async def test_editing_a_signed_checkpoint_is_found(ledger, ctx):
    with tampering(ledger) as conn:
        conn.execute(sa.text("UPDATE ledger_checkpoints SET head_hash = :h"), {"h": "ab" * 32})
    problem = await _problem(ledger)
    assert (problem.seq, problem.kind) == (N, "bad-signature")


def _rehash_from(conn: sa.Connection, seq: int, last: int) -> None:
    """Recompute every entry's hashes from ``seq`` to ``last``, as the service would."""
    prev = conn.execute(
        sa.text("SELECT entry_hash FROM ledger_entries WHERE seq = :s"), {"s": seq - 1}
    ).scalar_one()
    entries = table(LedgerEntry)
    for at in range(seq, last + 1):
        row = conn.execute(sa.select(entries).where(entries.c.seq == at)).one()
        entry = LedgerEntry(**row._mapping)
        entry.prev_hash = prev
        new_hash = chain.hash_entry(entry)
        conn.execute(
            sa.text("UPDATE ledger_entries SET prev_hash = :p, entry_hash = :h WHERE seq = :s"),
            {"p": prev, "h": new_hash, "s": at},
        )
        prev = new_hash


async def test_a_rewritten_chain_with_recomputed_hashes_is_caught_by_the_checkpoint(ledger, ctx):
    with tampering(ledger) as conn:
        conn.execute(sa.text("UPDATE ledger_entries SET purpose = 'rewritten story' WHERE seq = 3"))
        # The request rewritten too, so that only the checkpoint is left to tell.
        conn.execute(
            sa.text(
                "UPDATE disclosure_requests SET purpose = 'rewritten story' WHERE ledger_seq = 3"
            )
        )
        _rehash_from(conn, 3, N)
    problem = await _problem(ledger)
    assert (problem.seq, problem.kind) == (N, "changed")
    assert "checkpoint" in problem.detail


async def test_a_rewritten_entry_is_found_at_its_seq_by_its_request(ledger, ctx):
    """With its hashes worked out anew the chain holds until the checkpoint, but the
    request it was released from still says what was given."""
    with tampering(ledger) as conn:
        conn.execute(sa.text("UPDATE ledger_entries SET purpose = 'rewritten story' WHERE seq = 3"))
        _rehash_from(conn, 3, N)
    problem = await _problem(ledger)
    assert (problem.seq, problem.kind) == (3, "unbacked")
    # The field the two disagree on is named: the auditor need not compare rows by hand.
    assert problem.detail.endswith("but that request says otherwise of its purpose")


def _forge_next(conn: sa.Connection, **changes: object) -> int:
    """Append an entry by hand, a copy of the head with ``changes``, its hashes worked out
    as the service does, and its subject index: INSERT alone, which the append-only
    triggers allow. Its seq."""
    entries = table(LedgerEntry)
    head = conn.execute(sa.select(entries).order_by(entries.c.seq.desc()).limit(1)).one()
    entry = LedgerEntry(**{**head._mapping, **changes})
    entry.seq, entry.prev_hash = head.seq + 1, head.entry_hash
    entry.entry_hash = chain.hash_entry(entry)
    conn.execute(sa.insert(entries).values(entry.model_dump()))
    index = table(LedgerEntrySubject)
    for subject in entry.subject_ids:
        conn.execute(
            sa.insert(index).values(
                seq=entry.seq, subject_id=subject, recorded_at=entry.recorded_at
            )
        )
    return entry.seq


@pytest.mark.parametrize(
    ("request_id", "why"),
    [
        ("dsr_FORGEDforgedFORGEDforged", "there is no such request"),
        (None, "that request is requested"),  # a request not released (below)
    ],
)
async def test_an_entry_appended_by_hand_is_found_and_never_signed_as_authentic(
    ledger, ctx, subjects, request_id, why
):
    """An insider with the service's rights (INSERT, no UPDATE or DELETE) appends a
    disclosure that never happened; the next checkpoint signed it."""
    if request_id is None:
        request_id = await requested(ledger, subjects[:1])
    with sync_engine(ledger).begin() as conn:  # the triggers on
        seq = _forge_next(conn, request_id=request_id, recipient_organisation="Forged Recipient")
    problem = await _problem(ledger)
    assert (problem.seq, problem.kind) == (seq, "unbacked")
    assert problem.detail.endswith(why)
    # No checkpoint is signed over it (the schedule's, the command's, the API's), so no
    # signature and no witness line ever vouch for it.
    with pytest.raises(UnbackedEntry):
        await call(ledger, checkpoints.create)
    with pytest.raises(UnbackedEntry):
        await call(ledger, checkpoints.create_now, actor="staff:auditor")
    covered = await verified(ledger)
    assert covered.covered_to == N and covered.problem.kind == "unbacked"


async def test_a_tampered_subject_index_is_found(ledger, subjects):
    with tampering(ledger) as conn:
        conn.execute(
            sa.text(
                "UPDATE ledger_entry_subjects SET subject_id = 'sub_someone_else' WHERE seq = 2"
            )
        )
    problem = await _problem(ledger)
    assert (problem.seq, problem.kind) == (2, "index")


async def test_the_lowest_broken_position_is_reported(ledger, ctx):
    with tampering(ledger) as conn:
        conn.execute(sa.text("UPDATE ledger_entries SET purpose = 'late edit' WHERE seq = 5"))
        conn.execute(sa.text("UPDATE ledger_entries SET purpose = 'early edit' WHERE seq = 2"))
    assert (await _problem(ledger)).seq == 2


async def test_deleting_the_checkpoints_and_the_tail_is_found_once_a_checkpoint_is_overdue(
    ledger, db, ctx, clock
):
    # The reviewer's case: with the checkpoints gone, a cut chain looked intact.
    with tampering(ledger) as conn:
        conn.execute(sa.text("DELETE FROM ledger_checkpoints"))
        conn.execute(sa.text("DELETE FROM ledger_entry_subjects WHERE seq >= 5"))
        conn.execute(sa.text("DELETE FROM ledger_entries WHERE seq >= 5"))
    # Within two checkpoint intervals that is indistinguishable from a schedule that has
    # not run yet; after them, no signed checkpoint where one must be is a failure.
    interval = ctx.settings.ledger_checkpoint_interval_seconds
    clock.advance(seconds=2 * interval + 301)
    problem = await _problem(ledger)
    assert (problem.seq, problem.kind) == (1, "uncovered")


async def _released_after_the_checkpoint(ledger, subjects) -> None:
    """One more entry (seq N + 1), which no checkpoint covers yet."""
    await release_many(ledger, subjects, 1, ledger.state.ctx.clock)


@pytest.mark.parametrize("checkpoint_too", [False, True])
async def test_a_cut_ledger_is_never_signed(ledger, ctx, client, subjects, checkpoint_too):
    """The newest entry deleted (with the checkpoint over it, or without one over it yet):
    the verifier said `unrecorded`, and the next checkpoint signed the shortened head, so
    the export verified OK. Now no checkpoint is signed over a cut."""
    await _released_after_the_checkpoint(ledger, subjects)
    if checkpoint_too:
        assert (await call(ledger, checkpoints.create)).seq == N + 1
    with tampering(ledger) as conn:
        conn.execute(sa.text("DELETE FROM ledger_entry_subjects WHERE seq = :s"), {"s": N + 1})
        conn.execute(sa.text("DELETE FROM ledger_entries WHERE seq = :s"), {"s": N + 1})
    signed = count_rows(ledger, "ledger_checkpoints")
    for create in (checkpoints.create, checkpoints.create_now):
        with pytest.raises(LedgerCut) as refused:
            await call(ledger, create, actor="staff:auditor")
        assert refused.value.seq == N + 1
    if not checkpoint_too:
        assert f"was released as entry {N + 1}, which is missing" in refused.value.detail
    assert count_rows(ledger, "ledger_checkpoints") == signed
    # The auditor's export says it: it ends at the newest signed head, as for a forgery.
    from app.staff.roles import Role
    from tests.fixtures.staff import staff_auth

    auditor = await staff_auth(ledger, client, Role.AUDITOR)
    answer = await client.get("/v1/ledger/export", headers=auditor)
    assert answer.status_code == 200 and answer.headers["Ledger-Held-Back"] == str(N + 1)
    # And the file says it too (only the answer's header did): an auditor handed the file
    # is told, by the file and by its verification.
    header = orjson.loads(answer.content.splitlines()[0])
    assert "no checkpoint can be signed over" in header["held_back"]
    assert "run `smsreg ledger verify`" in header["held_back"]
    report = verify.verify_lines(io.BytesIO(answer.content))
    assert any(
        note.startswith("the export's header says it left entries out:") for note in report.notes
    )
    # A header is signed by nothing: whatever it says is shown as printable text only.
    lines = answer.content.splitlines(keepends=True)
    lines[0] = orjson.dumps({**header, "held_back": "\x1b[1A\x1b[2KOK"}) + b"\n"
    forged = verify.verify_lines(io.BytesIO(b"".join(lines)))
    assert not any("\x1b" in note for note in forged.notes)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("package_sha256", "b" * 64),
        ("package_csv_sha256", "c" * 64),
        ("consent", '{"sub_x":{"granted_at":"2026-11-01T00:00:00.000000+00:00","source":"call"}}'),
    ],
)
async def test_what_was_handed_over_and_on_what_consent_is_backed_by_the_request(
    ledger, ctx, subjects, field, value
):
    """The request kept no consent snapshot and no package sums: an entry rewritten in
    those (its hashes worked out anew, its checkpoint deleted) was signed by the next
    export, without any request being touched."""
    await _released_after_the_checkpoint(ledger, subjects)
    with tampering(ledger) as conn:
        conn.execute(
            sa.text(f"UPDATE ledger_entries SET {field} = :v WHERE seq = :s"),  # noqa: S608
            {"v": value, "s": N + 1},
        )
        _rehash_from(conn, N + 1, N + 1)
    problem = await _problem(ledger)
    assert (problem.seq, problem.kind) == (N + 1, "unbacked")
    assert problem.detail.endswith(f"but that request says otherwise of its {field}")
    with pytest.raises(UnbackedEntry):
        await call(ledger, checkpoints.create)


async def test_a_rewrite_under_a_deleted_checkpoint_is_not_signed_once_overdue(
    ledger, ctx, subjects, clock
):
    """An entry's package hash rewritten (its request's too) with the hashes worked out
    anew, and the checkpoint over it deleted: the schedule, or any export, signed the
    rewritten head at once, and nothing reported it. An entry the schedule should long
    have covered is now signed only on an operator's word."""
    await _released_after_the_checkpoint(ledger, subjects)
    assert (await call(ledger, checkpoints.create)).seq == N + 1
    interval = ctx.settings.ledger_checkpoint_interval_seconds
    clock.advance(seconds=2 * interval + 301)
    with tampering(ledger) as conn:
        conn.execute(
            sa.text("UPDATE ledger_entries SET package_sha256 = :h WHERE seq = :s"),
            {"h": "b" * 64, "s": N + 1},
        )
        conn.execute(
            sa.text("UPDATE disclosure_requests SET package_sha256 = :h WHERE ledger_seq = :s"),
            {"h": "b" * 64, "s": N + 1},
        )
        _rehash_from(conn, N + 1, N + 1)
        conn.execute(sa.text("DELETE FROM ledger_checkpoints WHERE seq = :s"), {"s": N + 1})
    problem = await _problem(ledger)
    assert (problem.seq, problem.kind) == (N + 1, "uncovered")
    for create in (checkpoints.create, checkpoints.create_now):
        with pytest.raises(LedgerUncovered) as refused:
            await call(ledger, create, actor="scheduler")
        assert refused.value.seq == N + 1
    assert (await verified(ledger)).covered_to == N
    # Within the window it cannot be told from a schedule that has not run yet (the
    # witness closes that); and an operator who checked it signs it.
    made = await call(ledger, checkpoints.create, actor="cli", sign_uncovered=True)
    assert made.seq == N + 1 and (await verified(ledger)).ok


async def test_a_late_but_healthy_schedule_still_signs(ledger, ctx, subjects, clock):
    """An entry unsigned for two intervals (within the five minutes more allowed) is a
    schedule that ran late, not a deleted checkpoint: it is signed as ever."""
    await _released_after_the_checkpoint(ledger, subjects)
    entries = table(LedgerEntry)
    with sync_engine(ledger).connect() as conn:
        recorded = conn.scalar(sa.select(entries.c.recorded_at).where(entries.c.seq == N + 1))
    late = dt.timedelta(seconds=2 * ctx.settings.ledger_checkpoint_interval_seconds + 290)
    clock.set(recorded + late)
    assert (await call(ledger, checkpoints.create, actor="scheduler")).seq == N + 1


async def test_a_restarted_schedule_keeps_its_cadence(ledger, ctx, subjects, clock):
    """A process waited a whole interval from its start before its first checkpoint, so
    restarts kept putting the schedule off until an entry went unsigned past what is
    allowed, and every checkpoint was refused. It now waits an interval from the newest."""
    import asyncio
    import contextlib

    await _released_after_the_checkpoint(ledger, subjects)
    clock.advance(seconds=ctx.settings.ledger_checkpoint_interval_seconds - 0.5)
    task = asyncio.create_task(checkpoints.run_schedule(ledger.state.db, ledger.state.ctx))
    try:
        for _ in range(40):
            await asyncio.sleep(0.1)
            if (await verified(ledger)).covered_to == N + 1:
                break
        assert (await verified(ledger)).covered_to == N + 1  # within seconds, not an hour
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_an_entry_appended_by_hand_holds_back_the_tail_not_every_export(
    ledger, ctx, client, subjects
):
    """One INSERT by an insider stopped every export through the API, the console and the
    command (the head could not be signed), for as long as the entry is kept: years. The
    export runs to the newest signed head instead, and its answer says what it held back
    and why."""
    from app.ledger.verify.files import parse_public_keys, verify_lines
    from app.staff.roles import Role
    from tests.fixtures.staff import staff_auth

    with sync_engine(ledger).begin() as conn:
        seq = _forge_next(conn, request_id="dsr_FORGEDforgedFORGEDforged")
    await release_many(ledger, subjects, 1, ledger.state.ctx.clock)  # a genuine one after it
    auditor = await staff_auth(ledger, client, Role.AUDITOR)
    answer = await client.get("/v1/ledger/export", headers=auditor)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Ledger-Held-Back"] == str(seq)
    records = [orjson.loads(line) for line in answer.text.splitlines()]
    header = records[0]
    assert (header["last_seq"], header["head_seq"]) == (N, N)
    keys = parse_public_keys(
        f"{r['key_id']}:{r['public_key']}" for r in records if r["type"] == "key"
    )
    assert verify_lines([orjson.dumps(r) for r in records], public_keys=keys).ok
    # Nothing was signed over the forged entry; the export is recorded with the reason.
    assert (await verified(ledger)).covered_to == N
    with sync_engine(ledger).connect() as conn:
        details = conn.execute(
            sa.text("SELECT details FROM audit_events WHERE tag = 'ledger:exported'")
        ).scalar_one()
    assert (details if isinstance(details, dict) else orjson.loads(details))["held_back"] == seq


async def test_requests_released_before_the_upgrade_get_their_entries_proof(
    ledger, settings, subjects
):
    """The migration that gives a request the consent and package sums of its entry
    fills them in for the requests already released, so none reads as unbacked."""
    from alembic import command

    from app.core.migrations import alembic_config, upgrade
    from app.ledger import provision
    from tests.ledger.conftest import POLICE, release

    await call(
        ledger, provision.give_consent, subscriber_id=subjects[0], recipient=POLICE, source="web"
    )
    await release(ledger, subjects[:1], legal_basis="consent", request_reference=None)
    await ledger.state.db.dispose()
    command.downgrade(alembic_config(settings.database_url), "d4f6a8c0e2b5")
    upgrade(settings.database_url)
    copied = sql(
        ledger,
        "SELECT count(*) FROM disclosure_requests r JOIN ledger_entries e "
        "ON e.seq = r.ledger_seq WHERE r.package_sha256 = e.package_sha256 "
        "AND r.package_csv_sha256 = e.package_csv_sha256 "
        "AND (r.consent = e.consent OR (r.consent IS NULL AND e.consent IS NULL))",
    )
    assert copied == [(N + 1,)]
    consented = "SELECT count(*) FROM disclosure_requests WHERE consent IS NOT NULL"
    assert sql(ledger, consented) == [(1,)]
    assert (await verified(ledger)).ok
