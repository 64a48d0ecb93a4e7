"""staff accounts

Revision ID: b0c0d0e0f502
Revises: b0c0d0e0f501
Create Date: 2026-11-22 07:02:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
import sqlmodel  # noqa: F401
from alembic import op  # noqa: F401

import app.core.db  # noqa: F401

revision: str = "b0c0d0e0f502"
down_revision: str | None = "b0c0d0e0f501"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
