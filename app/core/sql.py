"""Fixed SQL for the hot paths: a statement written once with ``:name`` parameters.

:class:`Sql` runs on the driver's own connection in the unit's transaction. Only the
measured hot paths use it (starting and checking a verification, the send limits and the
pumping guard, the outbox claim, API-key authentication), where SQLAlchemy's statement
execution costs more than the SQL itself. Rows are decoded by the row type's field types,
never by a column's name; parameters are bound for each driver here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic

import orjson
import sqlalchemy as sa
from typing_extensions import TypeVar

from app.core.clock import UTC

# The row type of a fixed statement; one that returns no rows leaves it out.
R = TypeVar("R", bound=tuple[Any, ...], default=tuple[Any, ...])


class Json:
    """Marks a NamedTuple field of a :class:`Sql` row as a JSON column:
    ``scopes: Annotated[list[str], Json]``."""


_PARAM = re.compile(r"(?<![:\w]):(\w+)")
# A statement that may run before its transaction has begun (Sql's read_only): one SELECT
# that takes no lock.
_PLAIN_READ = re.compile(
    r"(?is)^\s*SELECT\b(?!.*\bFOR\s+(UPDATE|SHARE|NO\s+KEY|KEY)\b)(?!.*advisory)"
)
_SQLITE_TIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"  # SQLAlchemy's own SQLite format


def _sqlite_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def _sqlite_json(text: Any) -> Any:
    return orjson.loads(text) if isinstance(text, str | bytes) else text


def _optional(convert: typing.Callable[[Any], Any]) -> typing.Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _field_decoder(annotation: Any, sqlite: bool) -> typing.Callable[[Any], Any] | None:
    """How a column arrives from the driver and must be turned into the field's type."""
    json = False
    if typing.get_origin(annotation) is typing.Annotated:
        base, *marks = typing.get_args(annotation)
        json = Json in marks
        annotation = base
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        annotation = members[0] if len(members) == 1 else annotation
    decode: typing.Callable[[Any], Any] | None = None
    if json:
        decode = _sqlite_json if sqlite else None  # asyncpg decodes JSON itself
    elif annotation is dt.datetime:
        # Stored as naive-UTC text on SQLite; asyncpg returns aware datetimes.
        decode = _sqlite_time if sqlite else None
    elif annotation is bool:
        decode = bool if sqlite else None
    if decode is None:
        return None
    return _optional(decode) if optional else decode


class Sql(Generic[R]):
    """A fixed statement of a hot path, written once with ``:name`` parameters.

    ``row`` is the NamedTuple its rows become, in the statement's column order. Columns
    are decoded by the field types: ``datetime`` (aware UTC), ``bool``, and
    ``Annotated[..., Json]``. ``read_only`` marks one SELECT that locks nothing, which
    may run before its unit's transaction has begun (see :class:`Tx`).
    """

    def __init__(self, text: str, row: type[R] | None = None, *, read_only: bool = False) -> None:
        if read_only and not _PLAIN_READ.match(text):
            raise ValueError("read_only is for a plain SELECT that locks nothing")
        self.text = text
        self.row = row
        self.read_only = read_only
        names = _PARAM.findall(text)
        # asyncpg numbers its parameters: each name once, in order of appearance.
        self.names = tuple(dict.fromkeys(names))
        index = {name: i + 1 for i, name in enumerate(self.names)}
        self.postgres = _PARAM.sub(lambda m: f"${index[m.group(1)]}", text)
        self._decoders: dict[bool, tuple[typing.Callable[[Any], Any] | None, ...]] = {}

    def decoders(self, sqlite: bool) -> tuple[typing.Callable[[Any], Any] | None, ...]:
        """One decoder (or None) per column, for a driver."""
        found = self._decoders.get(sqlite)
        if found is None:
            hints = typing.get_type_hints(self.row, include_extras=True) if self.row else {}
            fields: Sequence[str] = getattr(self.row, "_fields", ())
            found = tuple(_field_decoder(hints[name], sqlite) for name in fields)
            self._decoders[sqlite] = found
        return found

    def rows(self, fetched: Iterable[Sequence[Any]], *, sqlite: bool) -> list[R]:
        """Driver rows as the statement's row type."""
        row = self.row
        if row is None:
            raise TypeError("this statement returns no rows")
        make = typing.cast(Any, row)._make
        decoders = self.decoders(sqlite)
        if not any(decoders):
            return [make(values) for values in fetched]
        out = []
        for values in fetched:
            out.append(
                make(
                    value if decode is None else decode(value)
                    for decode, value in zip(decoders, values, strict=True)
                )
            )
        return out


def _bind_sqlite(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused; use an aware UTC time")
        value = value.astimezone(UTC)
        return _SQLITE_TIME % (
            value.year, value.month, value.day,
            value.hour, value.minute, value.second, value.microsecond,
        )  # fmt: skip
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value).decode()
    return value


def _bind_postgres(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        raise ValueError("naive datetimes are refused; use an aware UTC time")
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()  # JSON travels as text (SQLAlchemy's codec)
    return value


# Ids per IN list: a batch (a campaign's) may be larger than a driver takes bound
# parameters (asyncpg and SQLite stop at 32767).
IN_LIST = 1000


def in_chunks(values: Sequence[str], size: int = IN_LIST) -> Iterator[Sequence[str]]:
    """``values`` in slices of at most ``size``: one IN list each."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


MADE = "made"  # the count column of :func:`made_by`


def made_by(
    table: sa.Table, who: sa.ColumnElement[str], actor: str, at: sa.ColumnElement[Any]
) -> sa.Select[Any]:
    """One statement: the newest row of ``table`` that ``actor`` made (``who``; newest by
    ``at``, then ``id``) with how many they made in all (column :data:`MADE`); no row when
    they made none. What a console form shown once checks before it acts twice."""
    made = sa.func.count().over().label(MADE)
    return (
        sa.select(table, made).where(who == actor).order_by(at.desc(), table.c.id.desc()).limit(1)
    )


def without_made(row: Any) -> dict[str, Any]:
    """A :func:`made_by` row's own columns."""
    return {name: value for name, value in row._mapping.items() if name != MADE}


def lock_key(name: str) -> int:
    """The 64-bit advisory-lock key of a logical resource name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


_PLAIN = frozenset({str, int, bytes, float, bool, type(None)})


def sqlite_params(params: Mapping[str, Any] | None) -> Mapping[str, Any]:
    # Runs for every statement of the hot paths: only what the driver cannot take as it
    # is (instants, JSON) is converted, and the mapping is copied only then.
    if not params:
        return {}
    out: dict[str, Any] | None = None
    for key, value in params.items():
        if type(value) in _PLAIN:
            continue
        if out is None:
            out = dict(params)
        out[key] = _bind_sqlite(value)
    return params if out is None else out


def rowcount(status: str) -> int:
    # asyncpg answers a statement with its command tag, "UPDATE 3".
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def postgres_args(sql: Sql[Any], params: Mapping[str, Any] | None) -> list[Any]:
    if not sql.names:
        return []
    if params is None:
        raise ValueError("this statement needs parameters")
    return [_bind_postgres(params[name]) for name in sql.names]
