"""`smsreg ledger ...` on a real SQLite database."""

from __future__ import annotations

import asyncio
import json
import os
import threading

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import Settings
from app.main import create_app
from tests.conftest import TEST_KEYS, sync_engine
from tests.fixtures.subject import add_subscriber
from tests.ledger.conftest import number, release, sql, tampering

runner = CliRunner()
SEED = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SMSREG_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("SMSREG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SMSREG_LEDGER_SIGNING_KEYS", json.dumps({"L1": SEED}))
    for family, key in TEST_KEYS.items():
        monkeypatch.setenv(f"SMSREG_{family.upper()}_KEYS", f'{{"t1": "{key}"}}')
    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    app = create_app(Settings())

    async def disclosures() -> None:
        subjects = [await add_subscriber(app, number(i)) for i in range(3)]
        for i in range(4):
            await release(app, [subjects[i % 3]])
        await app.state.db.dispose()

    asyncio.run(disclosures())
    return tmp_path, app


def test_checkpoint_verify_export_and_verify_the_file(env):
    tmp_path, app = env
    made = runner.invoke(cli, ["ledger", "checkpoint"])
    assert made.exit_code == 0 and "seq 4" in made.output and "key L1" in made.output
    assert "nothing new" in runner.invoke(cli, ["ledger", "checkpoint"]).output

    checked = runner.invoke(cli, ["ledger", "verify"])
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith("OK: 4 entries")

    keys = runner.invoke(cli, ["ledger", "public-keys"])
    document = json.loads(keys.output)
    public = document["keys"][0]["public_key"]
    (tmp_path / "keys.json").write_text(keys.output)

    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"ledger.{fmt}"
        done = runner.invoke(cli, ["ledger", "export", "--output", str(out), "--format", fmt])
        assert done.exit_code == 0 and "exported 4 entries" in done.output, done.output
        pinned = runner.invoke(
            cli, ["ledger", "verify", "--file", str(out), "--public-key", f"L1:{public}"]
        )
        assert pinned.exit_code == 0 and pinned.output.startswith("OK"), pinned.output
        from_file = runner.invoke(
            cli,
            ["ledger", "verify", "--file", str(out), "--public-key", str(tmp_path / "keys.json")],
        )
        assert from_file.exit_code == 0

    filtered = tmp_path / "law.jsonl"
    done = runner.invoke(
        cli,
        [
            "ledger",
            "export",
            "--output",
            str(filtered),
            "--basis",
            "investigation_compelled",
            "--since",
            "2000-01-01T00:00Z",
        ],
    )
    assert done.exit_code == 0, done.output
    # A filtered export is verified as one when the auditor says they asked for one.
    keys = ["--public-key", f"L1:{public}"]
    unasked = runner.invoke(cli, ["ledger", "verify", "--file", str(filtered), *keys])
    assert unasked.exit_code == 1 and "BROKEN at seq 1: filtered:" in unasked.output
    other = ["--filter", "legal_basis=law", "--filter", "since=2000-01-01T00:00:00+09:00"]
    wrong = runner.invoke(cli, ["ledger", "verify", "--file", str(filtered), *keys, *other])
    assert wrong.exit_code == 1 and "not the one asked for" in wrong.output
    bad = runner.invoke(cli, ["ledger", "verify", "--file", str(filtered), *keys, "--filter", "x"])
    assert bad.exit_code == 2 and "bad --filter" in bad.output
    asked = ["--filter", "legal_basis=investigation_compelled",
             "--filter", "since=2000-01-01T00:00:00Z"]  # fmt: skip
    as_json = runner.invoke(
        cli, ["ledger", "verify", "--file", str(filtered), *keys, *asked, "--json"]
    )
    report = json.loads(as_json.output)
    assert report["ok"] is True
    assert report["filters"] == {
        "legal_basis": "investigation_compelled", "since": "2000-01-01T00:00:00.000000+00:00"
    }  # fmt: skip
    # Who verified and exported is in the audit trail, as the command line.
    tags = [row.tag for row in sql(app, "SELECT tag FROM audit_events WHERE actor = 'cli'")]
    assert tags.count("ledger:verified") == 1 and tags.count("ledger:exported") == 3


def test_verify_fails_with_the_broken_position(env):
    _tmp_path, app = env
    runner.invoke(cli, ["ledger", "checkpoint"])
    with sync_engine(app).begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER ledger_entries_no_update")
        conn.execute(sa.text("UPDATE ledger_entries SET purpose = 'x' WHERE seq = 2"))
    broken = runner.invoke(cli, ["ledger", "verify"])
    assert broken.exit_code == 1
    assert broken.output.startswith("BROKEN at seq 2: changed")


def test_a_tampered_export_file_fails(env):
    tmp_path, _app = env
    out = tmp_path / "ledger.jsonl"
    runner.invoke(cli, ["ledger", "export", "--output", str(out)])
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(
        b"".join(line for line in lines if b'"seq":3,' not in line or b'"entry"' not in line)
    )
    broken = runner.invoke(cli, ["ledger", "verify", "--file", str(out), "--file-keys"])
    assert broken.exit_code == 1 and "BROKEN at seq 3: removed" in broken.output


def test_a_file_is_verified_only_against_keys_the_auditor_names(env):
    """A forger signs a doctored file with a key of their own and puts it in the file:
    against the file's own keys it is consistent. So no verdict without a trusted key,
    and against the file's keys only when asked for, saying what that proves."""
    tmp_path, _app = env
    out = tmp_path / "ledger.jsonl"
    assert runner.invoke(cli, ["ledger", "export", "--output", str(out)]).exit_code == 0
    bare = runner.invoke(cli, ["ledger", "verify", "--file", str(out)])
    assert bare.exit_code == 2 and "no trusted key" in bare.output
    assert "OK" not in bare.output
    own = runner.invoke(cli, ["ledger", "verify", "--file", str(out), "--file-keys"])
    assert own.exit_code == 0 and own.output.startswith("OK"), own.output
    assert "consistent, not who signed it" in own.output
    (tmp_path / "keys.json").write_text(runner.invoke(cli, ["ledger", "public-keys"]).output)
    pinned = ["--public-key", str(tmp_path / "keys.json")]
    for mixed in (["--file", str(out), *pinned, "--file-keys"], ["--file-keys"]):
        confused = runner.invoke(cli, ["ledger", "verify", *mixed])
        assert confused.exit_code == 2 and "--file-keys is for --file" in confused.output


def test_purge_keeps_young_entries(env):
    result = runner.invoke(cli, ["ledger", "purge", "--dry-run"])
    assert result.exit_code == 0 and result.output.startswith("would purge 0 entries")
    assert runner.invoke(cli, ["ledger", "purge"]).output.startswith("purged 0 entries")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["ledger", "export", "--output", "x.jsonl", "--basis", "gossip"], 2),  # a choice
        (["ledger", "export", "--output", "x.jsonl", "--subject", "not an id"], 1),
        (
            [
                "ledger",
                "export",
                "--output",
                "x.jsonl",
                "--since",
                "2026-02-01T00:00+09:00",
                "--until",
                "2026-01-01T00:00+09:00",
            ],
            1,
        ),
        (["ledger", "export", "--output", "x.jsonl", "--since", "yesterday"], 2),
        # Without its offset: the API refuses it too, and it was read as UTC.
        (["ledger", "export", "--output", "x.jsonl", "--since", "2026-04-01"], 2),
        (["ledger", "export", "--output", "x.jsonl", "--until", "2026-04-01T09:00"], 2),
        (["ledger", "export", "--output", "x.jsonl", "--format", "xml"], 2),
        (["ledger", "verify", "--file", "/nonexistent/export.jsonl"], 2),
    ],
)
def test_bad_cli_input(env, args, code):
    assert runner.invoke(cli, args).exit_code == code


def test_bad_public_key_is_refused(env):
    tmp_path, _app = env
    out = tmp_path / "ledger.jsonl"
    runner.invoke(cli, ["ledger", "export", "--output", str(out)])
    result = runner.invoke(
        cli, ["ledger", "verify", "--file", str(out), "--public-key", "L1:short"]
    )
    assert result.exit_code == 2


def test_an_export_held_back_by_an_entry_no_release_wrote_exits_1(env):
    """The export is written to the newest signed head, and a job that runs it learns
    from its exit status that the ledger holds an entry no release wrote."""
    from tests.ledger.test_tamper import _forge_next

    tmp_path, app = env
    assert runner.invoke(cli, ["ledger", "checkpoint"]).exit_code == 0
    with sync_engine(app).begin() as conn:
        seq = _forge_next(conn, request_id="dsr_FORGEDforgedFORGEDforged")
    out = tmp_path / "held.jsonl"
    done = runner.invoke(cli, ["ledger", "export", "--output", str(out)])
    assert done.exit_code == 1, done.output
    assert "exported 4 entries" in done.output
    assert f"entries from seq {seq} on are left out" in done.output
    assert out.exists()
    (details,) = [
        json.loads(row.details) if isinstance(row.details, str) else row.details
        for row in sql(app, "SELECT details FROM audit_events WHERE tag = 'ledger:exported'")
    ]
    assert details["held_back"] == seq


def test_entries_long_uncovered_are_signed_only_with_the_operators_word(env):
    """Entries a scheduled checkpoint should long have covered (here: released, it says,
    a day ago, and never signed) are what a deleted checkpoint leaves; the command refuses
    to sign them until told the operator checked them."""
    from app.ledger import chain
    from app.models.ledger import LedgerEntry
    from app.models.types import table

    _tmp_path, app = env
    day_ago = "2026-01-01 00:00:00.000000"
    entries = table(LedgerEntry)
    with tampering(app) as conn:
        conn.execute(sa.text("UPDATE ledger_entries SET recorded_at = :t"), {"t": day_ago})
        conn.execute(sa.text("UPDATE disclosure_requests SET released_at = :t"), {"t": day_ago})
        prev = "0" * 64
        for row in conn.execute(sa.select(entries).order_by(entries.c.seq)).all():
            entry = LedgerEntry(**{**row._mapping, "prev_hash": prev})
            prev = chain.hash_entry(entry)
            conn.execute(
                sa.update(entries)
                .where(entries.c.seq == entry.seq)
                .values(prev_hash=entry.prev_hash, entry_hash=prev)
            )
    verified = runner.invoke(cli, ["ledger", "verify"])
    assert verified.exit_code == 1 and "at seq 1: uncovered" in verified.output, verified.output
    refused = runner.invoke(cli, ["ledger", "checkpoint"])
    assert refused.exit_code == 1 and refused.output.startswith("refused: "), refused.output
    assert "entry 1, recorded at 2026-01-01 00:00:00 UTC" in refused.output
    signed = runner.invoke(cli, ["ledger", "checkpoint", "--sign-uncovered"])
    assert signed.exit_code == 0 and "checkpoint #1: seq 4" in signed.output, signed.output
    assert runner.invoke(cli, ["ledger", "verify"]).exit_code == 0


def test_a_forced_checkpoint_of_an_empty_ledger_is_refused(tmp_path, monkeypatch):
    """It said "nothing new to checkpoint" and exited 0, as if it had signed."""
    monkeypatch.setenv("SMSREG_DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")
    monkeypatch.setenv("SMSREG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SMSREG_LEDGER_SIGNING_KEYS", json.dumps({"L1": SEED}))
    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    forced = runner.invoke(cli, ["ledger", "checkpoint", "--force"])
    assert forced.exit_code == 1 and forced.output.startswith("refused: "), forced.output
    assert "nothing new" in runner.invoke(cli, ["ledger", "checkpoint"]).output


def test_production_without_a_signing_key_refuses(env, monkeypatch):
    monkeypatch.delenv("SMSREG_LEDGER_SIGNING_KEYS")
    monkeypatch.setenv("SMSREG_ENVIRONMENT", "production")
    monkeypatch.setenv("SMSREG_SMS_SENDER", "twilio")
    monkeypatch.setenv("SMSREG_METRICS_TOKEN", "scrape-token-0123456789")
    result = runner.invoke(cli, ["ledger", "checkpoint"])
    assert result.exit_code == 2 and "SMSREG_LEDGER_SIGNING_KEYS" in result.output


def test_a_checkpoint_whose_witness_cannot_be_written_is_refused_in_one_line(env, monkeypatch):
    tmp_path, app = env
    monkeypatch.setenv("SMSREG_LEDGER_WITNESS", str(tmp_path / "no-such-dir" / "w.jsonl"))
    result = runner.invoke(cli, ["ledger", "checkpoint"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "refused: the witness (SMSREG_LEDGER_WITNESS) could not be written "
        "(No such file or directory): no checkpoint was made"
    ]
    assert sql(app, "SELECT count(*) FROM ledger_checkpoints") == [(0,)]


def test_verify_holds_the_ledger_to_a_witness_and_a_pinned_head(env, monkeypatch):
    tmp_path, app = env
    kept = tmp_path / "witness.jsonl"
    monkeypatch.setenv("SMSREG_LEDGER_WITNESS", str(kept))
    assert runner.invoke(cli, ["ledger", "checkpoint"]).exit_code == 0
    head = sql(app, "SELECT entry_hash FROM ledger_entries WHERE seq = 4")[0][0]
    held = runner.invoke(cli, ["ledger", "verify", "--witness", str(kept), "--expect", f"4:{head}"])
    assert held.exit_code == 0, held.output
    assert "held to 1 witnessed checkpoint(s) and 1 pinned head(s)" in held.output

    # The attack: the tail, its checkpoint and the requests it released, deleted.
    with tampering(app) as conn:
        for statement in (
            "DELETE FROM ledger_checkpoints",
            "DELETE FROM ledger_entry_subjects WHERE seq >= 3",
            "DELETE FROM ledger_entries WHERE seq >= 3",
            "DELETE FROM disclosure_requests WHERE ledger_seq >= 3",
        ):
            conn.execute(sa.text(statement))
    monkeypatch.delenv("SMSREG_LEDGER_WITNESS")
    assert runner.invoke(cli, ["ledger", "verify"]).exit_code == 0, "alone it looks intact"
    for args in (["--witness", str(kept)], ["--expect", f"4:{head}"]):
        broken = runner.invoke(cli, ["ledger", "verify", *args])
        assert broken.exit_code == 1, broken.output
        assert broken.output.startswith("BROKEN at seq 3: truncated"), broken.output
    monkeypatch.setenv("SMSREG_LEDGER_WITNESS", str(kept))
    configured = runner.invoke(cli, ["ledger", "verify"])
    assert configured.exit_code == 1 and "BROKEN at seq 3" in configured.output
    # A configured witness that is not there (a typo, a lost volume) is said, not skipped.
    monkeypatch.setenv("SMSREG_LEDGER_WITNESS", str(tmp_path / "typo.jsonl"))
    missing = runner.invoke(cli, ["ledger", "verify"])
    assert "typo.jsonl does not exist" in missing.output
    assert (
        "not a regular file: /dev/null"
        in runner.invoke(cli, ["ledger", "verify", "--file", "/dev/null", "--file-keys"]).output
    )

    for args in (["--expect", "4:zz"], ["--witness", str(tmp_path / "none.jsonl")]):
        assert runner.invoke(cli, ["ledger", "verify", *args]).exit_code == 2
    (tmp_path / "junk.jsonl").write_text("not json\n")
    assert (
        runner.invoke(
            cli, ["ledger", "verify", "--witness", str(tmp_path / "junk.jsonl")]
        ).exit_code
        == 2
    )


def test_a_failed_export_leaves_an_earlier_file_as_it_was(env, monkeypatch):
    """An export is written whole or not at all: one that fails (here: the database is
    not migrated) never leaves an earlier export at its path empty or cut short."""
    tmp_path, _app = env
    out = tmp_path / "ledger.jsonl"
    assert runner.invoke(cli, ["ledger", "export", "--output", str(out)]).exit_code == 0
    earlier = out.read_bytes()
    assert b'"entry"' in earlier
    assert oct(out.stat().st_mode & 0o777) == "0o600"  # it names people: not for every reader
    monkeypatch.setenv("SMSREG_DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")
    failed = runner.invoke(cli, ["ledger", "export", "--output", str(out), "--no-checkpoint"])
    assert failed.exit_code == 1, failed.output
    assert out.read_bytes() == earlier
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ledger")) == []


def test_an_export_through_a_link_or_into_a_pipe_reaches_what_they_name(env):
    """A symbolic link is followed (the file it names gets the export, the link stays), and
    a path that is no file, such as a pipe, is written as it is."""
    tmp_path, _app = env
    real = tmp_path / "real.jsonl"
    real.write_text("old")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    assert runner.invoke(cli, ["ledger", "export", "--output", str(link)]).exit_code == 0
    assert link.is_symlink() and b'"entry"' in real.read_bytes()

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(pipe.read_bytes()))
    reader.start()
    done = runner.invoke(cli, ["ledger", "export", "--output", str(pipe), "--no-checkpoint"])
    reader.join(timeout=30)
    assert done.exit_code == 0, done.output
    assert pipe.exists() and not pipe.is_file() and b'"entry"' in read[0]


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _content(entry):
    from app.ledger import chain

    return chain.content_hash(chain.hashed_content(entry))


def _extended(records):
    """An entry appended past the signed head, chained and counted as an honest one is."""
    from app.ledger import chain

    entries = [r for r in records if r["type"] == "entry"]
    fake = {**entries[-1], "seq": entries[-1]["seq"] + 1, "prev_hash": entries[-1]["entry_hash"]}
    fake["purpose"] = "A disclosure that never happened"
    fake["entry_hash"] = chain.entry_hash(
        seq=fake["seq"],
        prev_hash=fake["prev_hash"],
        content_sha256=chain.content_hash(chain.hashed_content(fake)),
    )
    out = [r for r in records if r["type"] != "end"] + [fake]
    for r in out:
        if r["type"] == "header":
            r["last_seq"] = r["head_seq"] = fake["seq"]
    return [*out, {"type": "end", "entries": len(entries) + 1, "links": 0}]


@pytest.mark.parametrize(
    ("tamper", "verdict"),
    [
        # Every checkpoint taken out: nothing in the file vouches for any entry.
        (lambda rs: [r for r in rs if r["type"] != "checkpoint"], "UNPROVEN at seq 1: uncovered"),
        # An entry added past the signed head, every count and hash made to agree.
        (_extended, "UNPROVEN at seq 5: uncovered"),
        # Everything taken out, the header and the end saying so.
        (
            lambda rs: [
                {**rs[0], "first_seq": None, "last_seq": None, "head_seq": 0},
                {"type": "end", "entries": 0, "links": 0},
            ],
            "UNPROVEN at seq 1: uncovered",
        ),
        # An entry swapped for its link, the file calling itself filtered by no filter.
        (
            lambda rs: [
                {**r, "complete": False}
                if r["type"] == "header"
                else {
                    "type": "link",
                    "seq": 3,
                    "prev_hash": r["prev_hash"],
                    "content_sha256": _content(r),
                    "entry_hash": r["entry_hash"],
                }  # fmt: skip
                if r["type"] == "entry" and r["seq"] == 3
                else {**r, "entries": 3, "links": 1}
                if r["type"] == "end"
                else r
                for r in rs
            ],
            "BROKEN at seq 3: removed",
        ),
    ],
    ids=["checkpoints-stripped", "entry-appended", "emptied", "unfiltered-filtered"],
)
def test_a_doctored_export_never_verifies(env, tamper, verdict):
    """With the keys pinned, a file whose entries no signed checkpoint covers proves
    nothing (exit 1), however well its hashes and counts agree."""
    tmp_path, _app = env
    out = tmp_path / "ledger.jsonl"
    assert runner.invoke(cli, ["ledger", "export", "--output", str(out)]).exit_code == 0
    (tmp_path / "keys.json").write_text(runner.invoke(cli, ["ledger", "public-keys"]).output)
    pinned = ["--public-key", str(tmp_path / "keys.json")]
    assert runner.invoke(cli, ["ledger", "verify", "--file", str(out), *pinned]).exit_code == 0
    _write(out, tamper(_records(out)))
    checked = runner.invoke(cli, ["ledger", "verify", "--file", str(out), *pinned])
    assert checked.exit_code == 1, checked.output
    assert checked.output.startswith(verdict), checked.output
