"""Column helpers shared by the table classes."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime


def timestamp(*, nullable: bool = False, index: bool = False, primary_key: bool = False) -> Any:
    """A timezone-aware UTC timestamp column."""
    return Field(
        sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index, primary_key=primary_key)
    )


def blob(*, nullable: bool = False) -> Any:
    """A binary column (ciphertexts, salts)."""
    return Field(sa_column=sa.Column(sa.LargeBinary(), nullable=nullable))


def json_column(*, nullable: bool = False) -> Any:
    """A JSON column (text on SQLite, json on PostgreSQL)."""
    return Field(sa_column=sa.Column(sa.JSON(), nullable=nullable))


def table(model: type[SQLModel]) -> sa.Table:
    """The table of a SQLModel table class, for SQLAlchemy Core statements."""
    found = model.__table__  # type: ignore[attr-defined]
    if not isinstance(found, sa.Table):
        raise TypeError(f"{model.__name__} is not a table class")
    return found
