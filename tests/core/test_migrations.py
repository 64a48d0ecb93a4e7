"""The schema comes from Alembic only, and models and migrations never drift apart."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import app.models  # noqa: F401
from app.core.db import UTCDateTime, create_sync_engine
from app.core.migrations import alembic_config, upgrade
from app.models.api_key import ApiKey
from app.models.types import in_schema_of, table
from tests.fixtures.database import new_sqlite_database, throwaway_postgres_database


def test_models_match_migrations(database_url):
    engine = create_sync_engine(database_url)
    with engine.connect() as conn:
        include = functools.partial(in_schema_of, dialect=conn.dialect.name)
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include}
        )
        diff = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


def test_single_head_and_file_names():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    for revision in script.walk_revisions():
        name = revision.path.rsplit("/", 1)[-1]
        assert name[:15].replace("-", "").isdigit(), f"{name} is not YYYY-MM-DD-HHMM_slug.py"


def test_database_is_at_head(database_url):
    engine = create_sync_engine(database_url)
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    engine.dispose()
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert current == head


def test_sqlite_send_windows_and_counts_move_to_their_keys_b_trees_with_every_row(tmp_path):
    """The upgrade that leaves SQLite's send windows and shared counts without a time
    index (their purge walks their keys) keeps every row, and so does its downgrade."""
    url = f"sqlite:///{tmp_path / 'smsreg.db'}"
    upgrade(url, "3d7e2a9c5f10")
    engine = create_sync_engine(url)
    window = ("n:abc", "[1764892800000000]", "2026-12-05 00:00:00.000000")
    hit = ("p:9012", "2026-12-05 00:00:00.000000", 3)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO send_windows VALUES (?, ?, ?)", window)
        conn.exec_driver_sql("INSERT INTO rate_limit_hits VALUES (?, ?, ?)", hit)

    def state() -> tuple[list[Any], list[Any], set[str], str]:
        with engine.connect() as conn:
            windows = [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM send_windows")]
            hits = [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM rate_limit_hits")]
            indexes = {
                name
                for (name,) in conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                )
            }
            (ddl,) = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'send_windows'"
            ).one()
        return windows, hits, indexes, ddl

    try:
        upgrade(url)
        windows, hits, indexes, ddl = state()
        assert (windows, hits) == ([window], [hit])
        assert not {"ix_send_windows_expires_at", "ix_rate_limit_hits_at"} & indexes
        assert "WITHOUT ROWID" in ddl
        command.downgrade(alembic_config(url), "3d7e2a9c5f10")
        windows, hits, indexes, ddl = state()
        assert (windows, hits) == ([window], [hit])
        assert {"ix_send_windows_expires_at", "ix_rate_limit_hits_at"} <= indexes
        assert "WITHOUT ROWID" not in ddl
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_stored_answers_get_their_verification_from_the_answer(dialect, tmp_path):
    """The upgrade that gives a stored answer its verification's column fills it from the
    answers already stored, so a number's erasure finds those too; the downgrade drops
    it and keeps the answers."""
    with contextlib.ExitStack() as stack:
        if dialect == "sqlite":
            url = new_sqlite_database(tmp_path)
        else:
            url = stack.enter_context(throwaway_postgres_database())
        command.downgrade(alembic_config(url), "7c2d4e6f8a91")
        engine = create_sync_engine(url)
        stack.callback(engine.dispose)
        at = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
        key = ApiKey(
            id="key_1", name="shop", prefix="smsreg_sk_ab", token_hash="h" * 64,
            token_key_id="k1", scopes=["verifications:write"], created_by="t",
            created_at=at, expires_at=at + dt.timedelta(days=90),
        )  # fmt: skip
        with engine.begin() as conn:
            conn.execute(sa.insert(table(ApiKey)).values(key.model_dump()))
            conn.execute(
                sa.text(
                    "INSERT INTO idempotency_records (client_id, key, fingerprint, "
                    "status_code, response, created_at) VALUES ('key_1', 'k', 'f', 201, "
                    ":response, :at)"
                ).bindparams(sa.bindparam("at", type_=UTCDateTime())),
                {"response": json.dumps({"id": "ver_1", "status": "pending"}), "at": at},
            )
        upgrade(url)
        with engine.connect() as conn:
            stored = conn.exec_driver_sql(
                "SELECT verification_id FROM idempotency_records"
            ).scalar_one()
        assert stored == "ver_1"
        command.downgrade(alembic_config(url), "7c2d4e6f8a91")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT key FROM idempotency_records").scalar_one() == "k"
