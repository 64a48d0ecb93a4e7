"""Alembic runs against SMSREG_DATABASE_URL, or a connection handed in by the caller."""

from __future__ import annotations

import functools

from alembic import context
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers every table)
from app.core.config import Settings
from app.core.db import create_sync_engine
from app.models.types import in_schema_of

target_metadata = SQLModel.metadata
config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_sync_engine(config.attributes.get("url") or Settings().database_url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=functools.partial(in_schema_of, dialect=connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
