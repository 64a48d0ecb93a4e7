"""Alembic, driven from code: the only way the schema changes."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(url: str, *, connection: sa.Connection | None = None) -> Config:
    """An Alembic config for a database URL (or an open connection)."""
    candidates = [_ROOT / "alembic", Path.cwd() / "alembic"]
    location = next((path for path in candidates if (path / "env.py").exists()), candidates[0])
    config = Config()
    config.set_main_option("script_location", str(location))
    config.attributes["url"] = url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision``."""
    command.upgrade(alembic_config(url), revision)
