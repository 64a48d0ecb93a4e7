"""SQLite: send windows and shared counts kept in their key's B-tree alone

On SQLite the purge walks rate_limit_hits in its primary key's order, so
ix_rate_limit_hits_at served nothing there but cost every send and every purged row a
page written. send_windows becomes its key's B-tree too (WITHOUT ROWID, as
rate_limit_hits is) with no index on expires_at: a send writes one B-tree instead of
three, and the purge walks the table in key order. PostgreSQL keeps both indexes, which
its purge walks; nothing changes there.

Revision ID: 5b8c1d2e4f60
Revises: 3d7e2a9c5f10
Create Date: 2026-12-05 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.core.db

revision: str = "5b8c1d2e4f60"
down_revision: str | None = "3d7e2a9c5f10"
branch_labels: str | None = None
depends_on: str | None = None


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _send_windows(name: str, *, rowid: bool) -> None:
    op.create_table(
        name,
        sa.Column("bucket", sqlmodel.sql.sqltypes.AutoString(length=140), nullable=False),
        sa.Column("sent_at", sa.JSON(), nullable=False),
        sa.Column("expires_at", app.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bucket"),
        sqlite_with_rowid=rowid,
    )


def _rebuild_send_windows(*, rowid: bool) -> None:
    # SQLite cannot change a table's storage in place: a new table, the rows in key
    # order, then the new one takes the old one's name.
    _send_windows("send_windows_new", rowid=rowid)
    op.execute(
        "INSERT INTO send_windows_new (bucket, sent_at, expires_at) "
        "SELECT bucket, sent_at, expires_at FROM send_windows ORDER BY bucket"
    )
    op.drop_table("send_windows")
    op.rename_table("send_windows_new", "send_windows")


def upgrade() -> None:
    if not _sqlite():
        return
    op.drop_index("ix_rate_limit_hits_at", table_name="rate_limit_hits")
    _rebuild_send_windows(rowid=False)


def downgrade() -> None:
    if not _sqlite():
        return
    _rebuild_send_windows(rowid=True)
    op.create_index("ix_send_windows_expires_at", "send_windows", ["expires_at"])
    op.create_index("ix_rate_limit_hits_at", "rate_limit_hits", ["at"])
