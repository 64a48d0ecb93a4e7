"""Append-only in the database, a chain that never forks, signed checkpoints (both DBs)."""

from __future__ import annotations

import asyncio
import base64
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from app.core.config import ConfigError, Settings
from app.core.context import Context
from app.core.db import Database
from app.core.errors import AppError
from app.ledger import chain, checkpoints, signing, workflow
from app.main import create_app
from tests.conftest import call, count_rows, make_settings, sync_engine
from tests.ledger.conftest import (
    IP,
    OFFICER_B,
    approved,
    release,
    release_many,
    sql,
    verified,
)


def _refused_by_database(app, statement: str) -> str:
    with pytest.raises(sa.exc.DBAPIError) as caught:
        sql(app, statement)
    message = str(caught.value)
    assert "append-only" in message, message
    return message


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET purpose = 'rewritten'",
        "UPDATE ledger_entries SET seq = seq + 100",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_entry_subjects SET subject_id = 'sub_other'",
        "DELETE FROM ledger_entry_subjects",
        "UPDATE ledger_checkpoints SET head_hash = 'x'",
        "DELETE FROM ledger_checkpoints",
    ],
)
async def test_database_refuses_update_and_delete_of_ledger_rows(app, ctx, subjects, statement):
    await release(app, subjects)
    await call(app, checkpoints.create)
    before = {t: count_rows(app, t) for t in ("ledger_entries", "ledger_checkpoints")}
    _refused_by_database(app, statement)
    assert {t: count_rows(app, t) for t in before} == before
    assert (await verified(app)).ok


async def test_postgresql_refuses_truncate(app, subjects):
    if not sync_engine(app).dialect.name == "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's")
    await release(app, subjects)
    for table in ("ledger_entries", "ledger_entry_subjects", "ledger_checkpoints"):
        _refused_by_database(app, f"TRUNCATE {table} CASCADE")


async def test_entries_chain_and_sequence_without_gaps(app, subjects, clock):
    released = await release_many(app, subjects, 4, clock)
    entries = [r.entry for r in released]
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev_hash == chain.GENESIS
    for before, after in zip(entries, entries[1:], strict=False):
        assert after.prev_hash == before.entry_hash
    for entry in entries:
        assert chain.hash_entry(entry) == entry.entry_hash


async def test_concurrent_releases_never_fork_the_chain(app, ctx, subjects):
    n = 12
    request_ids = [await approved(app, [subjects[i % 3]]) for i in range(n)]
    barrier = threading.Barrier(n)

    def one(request_id: str) -> int:
        async def attempt() -> int:
            db = Database(app.state.db.url)  # its own connection, as another process
            try:
                async with db.transaction() as tx:
                    done = await workflow.release(
                        tx, ctx, staff=OFFICER_B, request_id=request_id, ip=IP
                    )
                return done.entry.seq
            finally:
                await db.dispose()

        barrier.wait(timeout=30)
        return asyncio.run(attempt())

    with ThreadPoolExecutor(max_workers=n) as pool:
        seqs = sorted(pool.map(one, request_ids))
    assert seqs == list(range(1, n + 1)), "every release got its own place: no fork, no gap"
    rows = sql(app, "SELECT seq, prev_hash, entry_hash FROM ledger_entries ORDER BY seq")
    assert len({row.prev_hash for row in rows}) == n
    for before, after in zip(rows, rows[1:], strict=False):
        assert after.prev_hash == before.entry_hash
    report = await verified(app)
    assert report.ok and report.entries == n


async def test_checkpoint_signs_the_head_and_skips_when_nothing_is_new(app, ctx, subjects, clock):
    assert await call(app, checkpoints.create) is None, "an empty ledger has nothing to sign"
    with pytest.raises(AppError) as empty:
        await call(app, checkpoints.create_now, actor="test")
    assert empty.value.status == 409 and empty.value.slug == "ledger-empty"
    await release_many(app, subjects, 2, clock)
    made = await call(app, checkpoints.create)
    assert made is not None and made.seq == 2 and made.kind == "head"
    assert await call(app, checkpoints.create) is None
    assert await call(app, checkpoints.create, force=True) is not None
    ring = signing.ring(ctx.settings)
    message = signing.checkpoint_message(
        kind="head", seq=2, head_hash=made.head_hash, created_at=made.created_at, key_id=made.key_id
    )
    assert (
        signing.verify_signature(
            ring.public, key_id=made.key_id, message=message, signature=made.signature
        )
        is None
    )
    assert count_rows(app, "ledger_checkpoints") == 2


@pytest.fixture
def settings_overrides():
    return {"ledger_checkpoint_interval_seconds": 0.05}


async def signed_checkpoints(app) -> int:
    return await asyncio.to_thread(count_rows, app, "ledger_checkpoints")


async def test_scheduled_checkpoints_run_in_the_lifespan(app, subjects):
    async with app.router.lifespan_context(app):
        # Counted from a thread, so the count never waits on the loop the schedule runs on.
        await asyncio.sleep(0.2)
        assert await signed_checkpoints(app) == 0, "nothing to sign yet"
        await release(app, subjects)
        for _ in range(50):
            await asyncio.sleep(0.05)
            if await signed_checkpoints(app):
                break
        await asyncio.sleep(0.3)
    rows = sql(app, "SELECT seq, kind FROM ledger_checkpoints")
    assert [(row.seq, row.kind) for row in rows] == [(1, "head")], "one, then skipped"


async def test_public_keys_are_published_anonymously(client, ctx):
    answer = await client.get("/v1/ledger/public-keys")
    assert answer.status_code == 200
    keys = answer.json()["keys"]
    ring = signing.ring(ctx.settings)
    assert keys == [
        {
            "key_id": ring.active_id,
            "algorithm": "Ed25519",
            "public_key": ring.public_raw()[ring.active_id],
            "active": True,
        }
    ]
    assert "private" not in answer.text.lower()
    seed = ctx.settings.ledger_signing_keys[ring.active_id].get_secret_value()
    assert seed not in answer.text


def _seed(byte: int) -> str:
    return base64.b64encode(bytes([byte]) * 32).decode()


def _ring(**keys: int) -> dict[str, SecretStr]:
    return {key_id: SecretStr(_seed(byte)) for key_id, byte in keys.items()}


async def test_a_rotated_signing_key_still_verifies_old_checkpoints(app, settings, ctx, subjects):
    old = settings.model_copy(
        update={"ledger_signing_keys": _ring(k1=7), "ledger_signing_key_id": "k1"}
    )
    new = settings.model_copy(
        update={
            "ledger_signing_keys": _ring(k1=7, k2=8),
            "ledger_signing_key_id": "k2",
        }
    )
    old_ctx = Context(settings=old, keys=ctx.keys, clock=ctx.clock)
    new_ctx = Context(settings=new, keys=ctx.keys, clock=ctx.clock)

    async def checkpoint(with_ctx: Context):
        async with app.state.db.transaction() as tx:
            return await checkpoints.create(tx, with_ctx)

    await release(app, subjects)
    assert (await checkpoint(old_ctx)).key_id == "k1"
    await release(app, subjects)
    assert (await checkpoint(new_ctx)).key_id == "k2"
    report = await verified(app, new_ctx)
    assert report.ok and report.checkpoints == 2
    # Dropping the old key from the ring makes its checkpoints unverifiable: keep it.
    dropped = Context(
        settings=settings.model_copy(
            update={"ledger_signing_keys": _ring(k2=8), "ledger_signing_key_id": "k2"}
        ),
        keys=ctx.keys,
        clock=ctx.clock,
    )
    broken = await verified(app, dropped)
    assert broken.problem.kind == "bad-signature" and broken.problem.seq == 1


def test_production_refuses_to_start_without_a_signing_key(database_url, tmp_path):
    settings = make_settings(
        database_url, tmp_path, ledger_signing_keys={}, ledger_signing_key_id=None
    )
    production = settings.model_copy(update={"environment": "production", "sms_sender": "twilio"})
    with pytest.raises(ConfigError, match="SMSREG_LEDGER_SIGNING_KEYS"):
        create_app(production)


@pytest.mark.parametrize(
    ("keys", "active", "message"),
    [
        ({"k1": "changeme"}, None, "placeholder"),
        ({"k1": "not base64!"}, None, "base64"),
        ({"k1": base64.b64encode(b"x" * 31).decode()}, None, "exactly 32"),
        ({"k1": _seed(1), "k2": _seed(2)}, None, "KEY_ID"),
        ({"k1": _seed(1)}, "k9", "names no key"),
    ],
)
def test_bad_signing_keys_are_refused(keys, active, message):
    settings = Settings(_env_file=None, ledger_signing_keys=keys, ledger_signing_key_id=active)
    with pytest.raises(ConfigError, match=message):
        signing.ring(settings)


def test_development_generates_a_signing_key_once(tmp_path):
    first = Settings(state_dir=tmp_path, _env_file=None).with_dev_secrets()
    second = Settings(state_dir=tmp_path, _env_file=None).with_dev_secrets()
    assert signing.ring(first).public_raw() == signing.ring(second).public_raw()
    assert (tmp_path / "dev-ledger-signing.json").stat().st_mode & 0o077 == 0
