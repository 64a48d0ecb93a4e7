"""send windows: a number's recent sends in one row, checked and extended in one statement

Revision ID: ef1b94f5afb8
Revises: c1a2b3c4d5e6
Create Date: 2026-12-03 18:48:14.434585+00:00

The numbers' exact send limits move from one rate_limit_hits row per send (counted
under an advisory lock) to one send_windows row per number; the last day's hits move
with them, so no number's window restarts at the upgrade.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op
from sqlalchemy.dialects import postgresql

import app.core.db

revision: str = "ef1b94f5afb8"
down_revision: str | None = "c1a2b3c4d5e6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_windows",
        sa.Column("bucket", sqlmodel.sql.sqltypes.AutoString(length=140), nullable=False),
        sa.Column(
            "sent_at",
            sa.JSON().with_variant(postgresql.ARRAY(sa.BigInteger()), "postgresql"),
            nullable=False,
        ),
        sa.Column("expires_at", app.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bucket"),
    )
    with op.batch_alter_table("send_windows", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_send_windows_expires_at"), ["expires_at"], unique=False
        )
    _move_number_hits()


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAY = dt.timedelta(days=1)  # the widest window a number's limits have


def _move_number_hits() -> None:
    hits = sa.table(
        "rate_limit_hits",
        sa.column("bucket", sa.String),
        sa.column("at", app.core.db.UTCDateTime()),
        sa.column("hits", sa.Integer),
    )
    windows = sa.table(
        "send_windows",
        sa.column("bucket", sa.String),
        sa.column(
            "sent_at", sa.JSON().with_variant(postgresql.ARRAY(sa.BigInteger()), "postgresql")
        ),
        sa.column("expires_at", app.core.db.UTCDateTime()),
    )
    bind = op.get_bind()
    since = dt.datetime.now(dt.UTC) - _DAY
    numbers = hits.c.bucket.like("n:%")
    sent: dict[str, list[int]] = defaultdict(list)
    rows = bind.execute(
        sa.select(hits.c.bucket, hits.c.at, hits.c.hits)
        .where(numbers, hits.c.at > since)
        .order_by(hits.c.bucket, hits.c.at)
    )
    for bucket, at, n in rows:
        sent[bucket].extend([(at - _EPOCH) // dt.timedelta(microseconds=1)] * n)
    if sent:
        op.bulk_insert(
            windows,
            [
                {
                    "bucket": bucket,
                    "sent_at": times,
                    "expires_at": _EPOCH + dt.timedelta(microseconds=times[-1]) + _DAY,
                }
                for bucket, times in sent.items()
            ],
        )
    bind.execute(sa.delete(hits).where(numbers))


def downgrade() -> None:
    with op.batch_alter_table("send_windows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_send_windows_expires_at"))
    op.drop_table("send_windows")
