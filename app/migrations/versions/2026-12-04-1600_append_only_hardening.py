"""append-only hardening: SQLite's REPLACE cannot remove a ledger row; the access log is
append-only by trigger

Revision ID: e4a7c1d2b3f6
Revises: d7e1a5f0c2b9
Create Date: 2026-12-04 16:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "e4a7c1d2b3f6"
down_revision: str | None = "d7e1a5f0c2b9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite's INSERT OR REPLACE (and REPLACE) deletes the rows a new one collides with, and
# fires no DELETE trigger for them unless recursive_triggers is on for that connection.
# A BEFORE INSERT trigger fires for every connection: it refuses an insert that collides
# with a kept row on any key REPLACE would resolve (the primary key and each unique
# column). PostgreSQL has no REPLACE; its ON CONFLICT DO UPDATE fires the UPDATE triggers.
_COLLISIONS = {
    "ledger_entries": "seq = NEW.seq OR entry_hash = NEW.entry_hash "
    "OR prev_hash = NEW.prev_hash OR request_id = NEW.request_id",
    "ledger_entry_subjects": "subject_id = NEW.subject_id AND seq = NEW.seq",
    "ledger_checkpoints": "id = NEW.id",
    "access_log": "id = NEW.id",
}
# The access log as the ledger: no UPDATE; DELETE only of rows older than the shortest
# retention the settings allow (access_log_retention_days, at least 365) by the
# database's own clock, which is what `smsreg purge` deletes. Written out here, not
# imported, so this migration stays what it was when it ran.
_SQLITE_ACCESS_LOG = [
    "CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log "
    "BEGIN SELECT RAISE(ABORT, 'access_log is append-only: UPDATE refused'); END",
    "CREATE TRIGGER access_log_no_young_delete BEFORE DELETE ON access_log "
    "WHEN OLD.accessed_at > datetime('now', '-365 days') "
    "BEGIN SELECT RAISE(ABORT, 'access_log is append-only: DELETE of an entry younger than "
    "the 365-day retention refused'); END",
]
_POSTGRES_ACCESS_LOG = [
    """
    CREATE FUNCTION access_log_refuse_young_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.accessed_at > now() - interval '365 days' THEN
            RAISE EXCEPTION 'access_log is append-only: DELETE of an entry younger than the '
                '365-day retention refused'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN OLD;
    END
    $$
    """,
    "CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log "
    "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()",
    "CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()",
    "CREATE TRIGGER access_log_no_young_delete BEFORE DELETE ON access_log "
    "FOR EACH ROW EXECUTE FUNCTION access_log_refuse_young_delete()",
    "REVOKE UPDATE, DELETE, TRUNCATE ON access_log FROM PUBLIC",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table, collides in _COLLISIONS.items():
            op.execute(
                f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "  # noqa: S608
                f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {collides}) "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: an insert that would "
                "replace a kept row refused'); END"
            )
        for statement in _SQLITE_ACCESS_LOG:
            op.execute(statement)
    else:
        for statement in _POSTGRES_ACCESS_LOG:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in _COLLISIONS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_replace")
        op.execute("DROP TRIGGER IF EXISTS access_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS access_log_no_young_delete")
    else:
        for trigger in ("no_update", "no_truncate", "no_young_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS access_log_{trigger} ON access_log")
        op.execute("DROP FUNCTION IF EXISTS access_log_refuse_young_delete()")
