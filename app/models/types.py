"""Column helpers shared by the table classes.

A nullable column defaults to None: a table class is not validated when it is made, so
without a default an instance made without the field would lack the attribute
altogether (and its model_dump() the key).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime

# The largest values an Integer (a serial id) and a BigInteger column hold on PostgreSQL;
# a query parameter compared with such a column is bounded by them, or a larger number
# fails in the driver instead of being refused as input.
MAX_INTEGER = 2**31 - 1
MAX_BIG_INTEGER = 2**63 - 1

_ONLY_ON = "only_on"


def postgresql_only(index: sa.Index) -> sa.Index:
    """An index that exists on PostgreSQL alone (SQLite walks another way). Created there
    only (``ddl_if``), and marked in its ``info`` so that comparing the models with the
    migrations (:func:`in_schema_of`) expects it there only."""
    index.info[_ONLY_ON] = "postgresql"
    return index.ddl_if(dialect="postgresql")


def partial_index(name: str, *columns: str, where: str, unique: bool = False) -> sa.Index:
    """An index of the rows that satisfy ``where`` (SQL text, the same on SQLite and
    PostgreSQL): rows outside it cost no entry when they are written."""
    condition = sa.text(where)
    return sa.Index(
        name, *columns, unique=unique, sqlite_where=condition, postgresql_where=condition
    )


def in_schema_of(
    obj: Any, _name: str | None, type_: str, reflected: bool, _compare_to: Any, *, dialect: str
) -> bool:
    """Alembic's ``include_object`` for ``dialect``: whether a model's object belongs in
    that database's schema (an index marked by :func:`postgresql_only` does not on
    SQLite)."""
    if type_ != "index" or reflected:
        return True
    only_on = obj.info.get(_ONLY_ON)
    return only_on is None or only_on == dialect


def timestamp(*, nullable: bool = False, index: bool = False, primary_key: bool = False) -> Any:
    """A timezone-aware UTC timestamp column."""
    column: sa.Column[Any] = sa.Column(
        UTCDateTime(), nullable=nullable, index=index, primary_key=primary_key
    )
    return Field(default=None, sa_column=column) if nullable else Field(sa_column=column)


def blob(*, nullable: bool = False) -> Any:
    """A binary column (ciphertexts, salts)."""
    column: sa.Column[Any] = sa.Column(sa.LargeBinary(), nullable=nullable)
    return Field(default=None, sa_column=column) if nullable else Field(sa_column=column)


def json_column(*, nullable: bool = False) -> Any:
    """A JSON column (text on SQLite, json on PostgreSQL)."""
    column: sa.Column[Any] = sa.Column(sa.JSON(), nullable=nullable)
    return Field(default=None, sa_column=column) if nullable else Field(sa_column=column)


def table(model: type[SQLModel]) -> sa.Table:
    """The table of a SQLModel table class, for SQLAlchemy Core statements."""
    found = model.__table__  # type: ignore[attr-defined]
    if not isinstance(found, sa.Table):
        raise TypeError(f"{model.__name__} is not a table class")
    return found
