"""A released disclosure request keeps the consent and the package hashes of its entry

A release writes its ledger entry and marks its request released in one commit; the
database verifier and the signer find an entry whose request says otherwise
(``unbacked``). The entry's consent snapshot and its package's SHA-256 sums had no
counterpart in the request, so whoever could write the entries (with their hashes
worked out anew and the checkpoints deleted) could change what proves on which consent
and what was handed over without touching a request. The request now keeps them too,
filled in for the requests already released from their entries.

Revision ID: e6b8d0f2a4c7
Revises: d4f6a8c0e2b5
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "e6b8d0f2a4c7"
down_revision: str | None = "d4f6a8c0e2b5"
branch_labels: str | None = None
depends_on: str | None = None

COPIED = ("consent", "package_sha256", "package_csv_sha256")


def upgrade() -> None:
    with op.batch_alter_table("disclosure_requests") as table:
        table.add_column(sa.Column("consent", sa.Text(), nullable=True))
        table.add_column(sa.Column("package_sha256", sa.String(length=64), nullable=True))
        table.add_column(sa.Column("package_csv_sha256", sa.String(length=64), nullable=True))
    for column in COPIED:
        op.execute(
            f"UPDATE disclosure_requests SET {column} = (SELECT e.{column} FROM ledger_entries e "  # noqa: S608
            "WHERE e.seq = disclosure_requests.ledger_seq) WHERE status = 'released'"
        )


def downgrade() -> None:
    with op.batch_alter_table("disclosure_requests") as table:
        for column in reversed(COPIED):
            table.drop_column(column)
