"""A stored answer names its verification in a column of its own, indexed

A number's erasure deletes the stored first answers to its verifications' starts; it
found them by the id inside each answer's JSON, so it read every answer of the last day
(up to 1.4 million at 1,000 idempotent starts a minute) under SQLite's write lock. The
column is filled from the answers already stored; the index is partial, and a start's
entry goes on its last page (verification ids grow with time).

Revision ID: 8d3e5f7a9b02
Revises: 7c2d4e6f8a91
Create Date: 2026-12-05 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "8d3e5f7a9b02"
down_revision: str | None = "7c2d4e6f8a91"
branch_labels: str | None = None
depends_on: str | None = None

_NAMED = sa.text("verification_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("idempotency_records") as batch:
        batch.add_column(
            sa.Column("verification_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True)
        )
    answered = (
        "json_extract(response, '$.id')"
        if op.get_bind().dialect.name == "sqlite"
        else "response ->> 'id'"
    )
    op.execute(f"UPDATE idempotency_records SET verification_id = {answered}")  # noqa: S608
    op.create_index(
        "ix_idempotency_records_verification",
        "idempotency_records",
        ["verification_id"],
        sqlite_where=_NAMED,
        postgresql_where=_NAMED,
    )


def downgrade() -> None:
    op.drop_index("ix_idempotency_records_verification", table_name="idempotency_records")
    with op.batch_alter_table("idempotency_records") as batch:
        batch.drop_column("verification_id")
