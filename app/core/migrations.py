"""Alembic, driven from code: the only way the schema changes.

The migrations ship inside the package (app/migrations), so an installed wheel migrates
as the repository does. On PostgreSQL an upgrade holds a session advisory lock, so two
replicas migrating at once take turns: the second finds the schema at head and does
nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from importlib import resources
from typing import NamedTuple

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from app.core.db import create_sync_engine, dialect_of
from app.core.sql import lock_key

_LOCK = lock_key("smsreg:migrate")


def alembic_config(url: str, *, connection: sa.Connection | None = None) -> Config:
    """An Alembic config for a database URL (or an open connection)."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("app") / "migrations"))
    config.attributes["url"] = url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision``, one migrator at a time."""
    if dialect_of(url) == "sqlite":
        # SQLite's own write lock (BEGIN IMMEDIATE) already makes migrators take turns.
        command.upgrade(alembic_config(url), revision)
        return
    engine = create_sync_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK})
            conn.commit()
            try:
                command.upgrade(alembic_config(url, connection=conn), revision)
                conn.commit()
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK})
                conn.commit()
    finally:
        engine.dispose()


REVISIONS = sa.text("SELECT version_num FROM alembic_version")
"""The revisions a database is at, as Alembic keeps them."""


@functools.cache
def _revisions() -> tuple[frozenset[str], frozenset[str]]:
    """This release's heads, and every revision it knows."""
    script = ScriptDirectory.from_config(alembic_config(""))
    known = frozenset(revision.revision for revision in script.walk_revisions())
    return frozenset(script.get_heads()), known


def unknown(current: Collection[str]) -> list[str]:
    """The revisions of ``current`` this release does not know: a newer release's."""
    _, known = _revisions()
    return sorted(revision for revision in current if revision not in known)


def behind(current: Collection[str]) -> bool:
    """Whether a database at the ``current`` revisions needs `smsreg migrate` before this
    release may run on it: it has none (never migrated), or one this release knows that
    is not its head. A revision this release does not know is a newer release's, whose
    migrations keep older code working while replicas are replaced: not behind."""
    heads, known = _revisions()
    if not current:
        return True
    return any(revision in known and revision not in heads for revision in current)


CURRENT_SCHEMA = sa.text("SELECT current_schema()")


class SchemaNotUsable(Exception):
    """The role sees no schema at all (PostgreSQL's ``current_schema()`` is null: it has
    no USAGE on the one its search path names), so a migrated database looks empty."""


def current_revisions(url: str) -> tuple[str, ...]:
    """The revisions the database at ``url`` is at (none if it was never migrated);
    SchemaNotUsable when the role cannot tell, seeing no schema."""
    engine = create_sync_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql" and conn.scalar(CURRENT_SCHEMA) is None:
                raise SchemaNotUsable()
            # Read as Alembic keeps it, without Alembic's migration context (which logs).
            if not sa.inspect(conn).has_table("alembic_version"):
                return ()
            return tuple(conn.execute(REVISIONS).scalars())
    finally:
        engine.dispose()


# Which of this release's tables (``:names``) the connected role lacks its rights on, as
# the grants after a migration give them (docker/postgres/grants.sql): reading
# alembic_version; reading and appending to an append-only table (one a ledger_refuse_*
# trigger guards); reading and writing every other. One the grants were not applied to
# (a table a release added) is named, rather than answering 500 on the first request
# that touches it. Only this release's: a newer release's table, not yet granted while
# replicas are replaced, or a table of the schema smsreg does not own, is not its concern.
UNGRANTED = sa.text(
    r"""
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
    AND c.relname = ANY(CAST(:names AS text[])) AND NOT (
        has_table_privilege(c.oid, 'SELECT') AND (c.relname = 'alembic_version' OR (
            has_table_privilege(c.oid, 'INSERT') AND (
                EXISTS (
                    SELECT 1 FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                    WHERE t.tgrelid = c.oid AND NOT t.tgisinternal
                    AND p.proname LIKE 'ledger\_refuse\_%'
                )
                OR (has_table_privilege(c.oid, 'UPDATE') AND has_table_privilege(c.oid, 'DELETE'))
            )
        ))
    )
    ORDER BY c.relname
    """
)


# Whether the connected role could switch the ledger's append-only triggers off: it owns
# the ledger's table (or is a member of its owner), or is a superuser.
OWNS_THE_LEDGER = sa.text(
    """
    SELECT coalesce((
        SELECT pg_has_role(current_user, t.tableowner, 'MEMBER') FROM pg_tables t
        WHERE t.schemaname = current_schema() AND t.tablename = 'ledger_entries'
    ), false) OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
    """
)


class RoleRights(NamedTuple):
    """What the connected role may do with smsreg's tables."""

    ungranted: list[str]  # this release's tables it lacks its rights on (UNGRANTED)
    owns_the_ledger: bool  # it could switch the ledger's triggers off (OWNS_THE_LEDGER)


def role_rights(url: str, tables: Collection[str]) -> RoleRights:
    """The rights of the role at ``url`` over ``tables`` (this release's), read on one
    connection; on SQLite, which has no roles, none missing and none too many."""
    if dialect_of(url) == "sqlite":
        return RoleRights(ungranted=[], owns_the_ledger=False)
    engine = create_sync_engine(url)
    try:
        with engine.connect() as conn:
            missing = list(conn.execute(UNGRANTED, {"names": sorted(tables)}).scalars())
            return RoleRights(missing, bool(conn.execute(OWNS_THE_LEDGER).scalar()))
    finally:
        engine.dispose()
