"""A ledger that cannot be shortened unseen: the witness, pinned heads, and the released
requests that contradict a cut ledger. The attack, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from app.ledger import checkpoints, repository, verify, witness
from app.ledger.errors import LedgerCut, LedgerRewritten, WitnessUnavailable
from app.ledger.verify import Pins, expected_head
from tests.conftest import call, count_rows
from tests.fixtures.staff import CHEAP_HASHING
from tests.ledger.conftest import release_many, sql, tampering
from tests.ledger.test_tamper import _rehash_from
from tests.staff.helpers import staff_auth


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    return {**CHEAP_HASHING, "ledger_witness": tmp_path / "witness.jsonl"}


@pytest.fixture
def witness_file(settings) -> Path:
    return settings.ledger_witness


@pytest.fixture
async def seven(app, subjects, clock, witness_file):
    """Seven released disclosures, checkpoints at 4 and at 7, both witnessed."""
    await release_many(app, subjects, 4, clock)
    assert (await call(app, checkpoints.create)).seq == 4
    await release_many(app, subjects, 3, clock)
    assert (await call(app, checkpoints.create)).seq == 7
    assert (await checked(app)).ok
    return app


async def checked(app, pins: Pins | None = None) -> verify.Report:
    return await verify.verify_in_units(app.state.db, app.state.ctx, pins)


def witnessed(path: Path) -> Pins:
    return Pins(witnessed=witness.read_file(path))


def cut(app, *, from_seq: int, requests_too: bool = False) -> None:
    """The attack: entries from ``from_seq`` on and the checkpoints naming them
    deleted by the database's owner (and, if asked, the requests they released)."""
    with tampering(app) as conn:
        conn.execute(sa.text("DELETE FROM ledger_checkpoints WHERE seq >= :s"), {"s": from_seq})
        conn.execute(sa.text("DELETE FROM ledger_entry_subjects WHERE seq >= :s"), {"s": from_seq})
        conn.execute(sa.text("DELETE FROM ledger_entries WHERE seq >= :s"), {"s": from_seq})
        if requests_too:
            conn.execute(
                sa.text("DELETE FROM disclosure_requests WHERE ledger_seq >= :s"), {"s": from_seq}
            )


def at(report: verify.Report) -> tuple[int, str]:
    assert report.problem is not None, report.text()
    assert report.text().startswith(f"BROKEN at seq {report.problem.seq}: ")
    return report.problem.seq, report.problem.kind


async def test_every_checkpoint_is_appended_to_the_witness_owner_only(seven, witness_file):
    lines = witness_file.read_bytes().splitlines()
    assert [orjson.loads(line)["seq"] for line in lines] == [4, 7]
    assert stat.S_IMODE(witness_file.stat().st_mode) == 0o600
    stored = [cp.id for cp in await call(seven, _all_checkpoints)]
    assert [orjson.loads(line)["id"] for line in lines] == stored
    # The witness copies verify under the ring's keys, as the database's own do.
    assert (await checked(seven, witnessed(witness_file))).ok


async def _all_checkpoints(tx, ctx):
    return await repository.checkpoints_between(tx)


async def test_a_cut_tail_with_its_checkpoint_is_found_by_the_released_requests(seven):
    # Entries 5-7 and the checkpoint at 7 gone; the older one at 4 remains.
    cut(seven, from_seq=5)
    assert at(await checked(seven)) == (5, "unrecorded")


async def test_a_start_cut_behind_an_anchor_signed_out_of_turn_is_found(seven):
    """Whoever holds the service's signing key signed a purge anchor over entries minutes
    old and deleted them: every check said OK, and the subjects' records were gone. A
    purge takes the requests of what it removes; the ones left name the cut."""
    head = sql(seven, "SELECT entry_hash FROM ledger_entries WHERE seq = 2")[0][0]

    async def forge(tx, ctx):
        return await checkpoints.sign(
            tx, ctx, kind=checkpoints.ANCHOR, seq=2, head_hash=head, now=ctx.clock.now()
        )

    await call(seven, forge)
    with tampering(seven) as conn:
        conn.execute(sa.text("DELETE FROM ledger_entry_subjects WHERE seq <= 2"))
        conn.execute(sa.text("DELETE FROM ledger_entries WHERE seq <= 2"))
    report = await checked(seven)
    assert at(report) == (1, "unrecorded")
    assert "behind the purge anchor at seq 2" in report.problem.detail
    with pytest.raises(LedgerCut):
        await call(seven, checkpoints.create, force=True)


async def test_a_cut_tail_is_found_by_the_witness_even_with_the_requests_gone(seven, witness_file):
    cut(seven, from_seq=5, requests_too=True)
    assert (await checked(seven)).ok, "the database alone cannot tell any more"
    report = await checked(seven, witnessed(witness_file))
    assert at(report) == (5, "truncated")
    assert "witnessed checkpoint" in report.problem.detail
    assert "commits to seq 7" in report.problem.detail


async def test_no_checkpoint_is_signed_over_what_the_witness_contradicts(seven, witness_file):
    """The signer read only the database: over a tail cut with its requests and its
    checkpoints, or over entries rewritten with their hashes recomputed and their
    checkpoints deleted, it signed, and wrote the new checkpoint to the very witness
    that already held another."""
    lines = witness_file.read_bytes()
    cut(seven, from_seq=5, requests_too=True)
    with pytest.raises(LedgerCut, match="witnessed checkpoint .* covers seq 7"):
        await call(seven, checkpoints.create)
    assert witness_file.read_bytes() == lines, "nothing more was witnessed"


async def test_no_checkpoint_is_signed_over_a_rewrite_the_witness_saw(seven, witness_file):
    lines = witness_file.read_bytes()
    with tampering(seven) as conn:
        conn.execute(sa.text("DELETE FROM ledger_checkpoints"))
        conn.execute(sa.text("UPDATE ledger_entries SET purpose = 'rewritten' WHERE seq = 3"))
        conn.execute(
            sa.text("UPDATE disclosure_requests SET purpose = 'rewritten' WHERE ledger_seq = 3")
        )
        _rehash_from(conn, 3, 7)
    with pytest.raises(LedgerRewritten, match="entry 7 holds another hash"):
        await call(seven, checkpoints.create)
    assert witness_file.read_bytes() == lines


async def test_a_cut_tail_is_found_by_a_pinned_head(seven):
    head = sql(seven, "SELECT entry_hash FROM ledger_entries WHERE seq = 7")[0][0]
    assert (await checked(seven, Pins(expected=[expected_head(f"7:{head}")]))).ok
    cut(seven, from_seq=5, requests_too=True)
    report = await checked(seven, Pins(expected=[expected_head(f"7:{head}")]))
    assert at(report) == (5, "truncated")
    assert "pinned head" in report.problem.detail


async def test_a_ledger_that_diverges_from_a_pinned_head_is_found(seven):
    assert at(await checked(seven, Pins(expected=[expected_head("4:" + "ab" * 32)]))) == (
        4,
        "changed",
    )


async def test_an_emptied_ledger_is_found_by_its_requests_and_its_witness(seven, witness_file):
    cut(seven, from_seq=1)
    assert count_rows(seven, "ledger_entries") == 0
    assert at(await checked(seven)) == (1, "unrecorded")
    cut(seven, from_seq=1, requests_too=True)
    assert (await checked(seven)).ok, "nothing left in the database says otherwise"
    assert at(await checked(seven, witnessed(witness_file))) == (1, "truncated")


async def test_a_released_request_pointing_at_another_entry_is_found(seven):
    with tampering(seven) as conn:
        conn.execute(sa.text("UPDATE disclosure_requests SET ledger_seq = 9 WHERE ledger_seq = 6"))
    # Entry 6 has no request now; request 6 names an entry there is not.
    report = await checked(seven)
    assert at(report) == (6, "unbacked") and "released as entry 9" in report.problem.detail
    with tampering(seven) as conn:
        conn.execute(sa.text("UPDATE disclosure_requests SET ledger_seq = 3 WHERE ledger_seq = 9"))
    report = await checked(seven)
    assert at(report) == (3, "unrecorded") and "records request" in report.problem.detail


async def test_a_forged_witness_line_is_a_bad_signature(seven, witness_file):
    lines = witness.read_file(witness_file)
    forged = {**lines[0], "head_hash": "cd" * 32}
    assert at(await checked(seven, Pins(witnessed=[forged]))) == (4, "bad-signature")


@pytest.mark.parametrize(
    "settings_overrides",
    [{**CHEAP_HASHING, "ledger_witness": Path("/nonexistent-volume/witness.jsonl")}],
)
async def test_a_witness_that_cannot_keep_it_fails_the_checkpoint(app, subjects, clock):
    await release_many(app, subjects, 1, clock)
    with pytest.raises(WitnessUnavailable):
        await call(app, checkpoints.create)
    assert count_rows(app, "ledger_checkpoints") == 0, "no checkpoint goes unwitnessed"


def test_expected_heads_are_checked():
    assert expected_head("7:" + "AB" * 32)["head_hash"] == "ab" * 32
    for bad in ("7", "0:" + "ab" * 32, "x:" + "ab" * 32, "7:abc", "-1:" + "ab" * 32):
        with pytest.raises(ValueError):
            expected_head(bad)


async def test_the_verify_route_holds_the_ledger_to_the_configured_witness(seven, client):
    auditor = await staff_auth(seven, client, "auditor", username="kim")
    answer = await client.get("/v1/ledger/verify", headers=auditor)
    assert answer.status_code == 200 and answer.json()["ok"], answer.text
    assert "held to 2 witnessed checkpoint(s) and 0 pinned head(s)" in answer.json()["notes"]
    cut(seven, from_seq=5, requests_too=True)
    problem = (await client.get("/v1/ledger/verify", headers=auditor)).json()["problem"]
    assert (problem["seq"], problem["kind"]) == (5, "truncated")


@pytest.mark.parametrize("settings_overrides", [{**CHEAP_HASHING, "ledger_witness": None}])
async def test_the_schedule_warns_when_no_witness_is_configured(app, caplog):
    task = asyncio.create_task(checkpoints.run_schedule(app.state.db, app.state.ctx))
    await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert any("no witness" in record.getMessage() for record in caplog.records)
