"""Reading an export file back into records: JSON Lines or CSV, streamed, with a window
to look ahead into (a reorder shows as an entry that comes later)."""

from __future__ import annotations

import collections
import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from app.core.csvsafe import cell, uncell
from app.ledger import chain
from app.ledger.export_format import CSV_COLUMNS, NULLABLE
from app.ledger.verify.walk import as_int

LOOKAHEAD = 1024


class Malformed(Exception):
    """The file is not a well-formed export (its problem is ``malformed``)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Repeated(ValueError):
    pass


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise _Repeated()
    return found


def jsonl_records(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The records of a JSON Lines export. A record that names a field twice is
    malformed: this reader would check one value, and another tool show the other."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)  # strict: no NaN, no 1e400, no lone surrogate
        except orjson.JSONDecodeError:
            raise Malformed(f"line {number} is not JSON") from None
        try:
            json.loads(line, object_pairs_hook=_once)  # what orjson keeps quiet about
        except _Repeated:
            raise Malformed(f"line {number} names a field twice") from None
        if not isinstance(record, dict) or "type" not in record:
            raise Malformed(f"line {number} is not a record")
        yield record


def _csv_value(name: str, text: str) -> Any:
    if name in ("v", "seq"):
        return int(text)
    value = uncell(text)
    if cell(value) != text:
        # Not as the export writes it: a formula's guard taken away (the spreadsheet runs
        # it), or a quote added (the sheet shows other text than the one hashed).
        raise ValueError(f"{name}: not written as an export writes it")
    text = value
    if text == "" and name in NULLABLE:
        return None
    if name in chain.JSON_FIELDS:
        return orjson.loads(text)
    return text


def _signing_value(name: str, text: str) -> str:
    """A key id, a signature or a public key: guarded as any cell; an export made before
    they were guarded wrote them bare, which is still read (a signature proves itself)."""
    value = uncell(text)
    if value != text and cell(value) != text:
        raise ValueError(f"{name}: not written as an export writes it")  # a quote added
    return value


def csv_records(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The records of a CSV export, cells read back to their values."""
    reader = csv.reader(
        io.TextIOWrapper(io.BufferedReader(_LinesIO(lines)), encoding="utf-8", newline="")
    )
    header = next(reader, None)
    # An export made before the optional columns existed lacks them: they read as empty.
    legacy = tuple(name for name in CSV_COLUMNS if name not in chain.OPTIONAL_FIELDS)
    if header is None or tuple(header) not in (CSV_COLUMNS, legacy):
        raise Malformed("the CSV header is not an smsreg ledger export's")
    columns = tuple(header)
    for number, values in enumerate(reader, start=2):
        if len(values) != len(columns):
            raise Malformed(f"CSV row {number} has {len(values)} cells")
        row = dict.fromkeys(chain.OPTIONAL_FIELDS, "") | dict(zip(columns, values, strict=True))
        kind = row["record_type"]
        try:
            if kind == "entry":
                record: dict[str, Any] = {"type": "entry"}
                for name in ("v", *chain.CONTENT_FIELDS, *chain.OPTIONAL_FIELDS):
                    record[name] = _csv_value(name, row[name])
                record["prev_hash"], record["entry_hash"] = row["prev_hash"], row["entry_hash"]
            elif kind == "link":
                record = {
                    "type": "link",
                    "seq": int(row["seq"]),
                    "prev_hash": row["prev_hash"],
                    "content_sha256": row["content_sha256"],
                    "entry_hash": row["entry_hash"],
                }
            elif kind == "checkpoint":
                record = {"type": "checkpoint", "id": int(row["checkpoint_id"])}
                for name in ("kind", "head_hash", "created_at"):
                    record[name] = row[name]
                for name in ("key_id", "signature"):
                    record[name] = _signing_value(name, row[name])
                record["seq"] = int(row["seq"])
            elif kind == "key":
                key_id, public_key = (_signing_value(n, row[n]) for n in ("key_id", "public_key"))
                record = {"type": "key", "key_id": key_id, "public_key": public_key}
            elif kind in ("header", "end"):
                record = {"type": kind, **orjson.loads(row["meta"])}
            else:
                raise Malformed(f"CSV row {number} has an unknown record_type")
        except (ValueError, orjson.JSONDecodeError):
            raise Malformed(f"CSV row {number} has a malformed cell") from None
        yield record


class _LinesIO(io.RawIOBase):
    """Lines of bytes as a readable stream, for the csv module."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._lines = iter(lines)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._lines)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class Lookahead:
    """Records one at a time, with a window to look ahead into (for reorders)."""

    def __init__(self, source: Iterator[dict[str, Any]], size: int = LOOKAHEAD) -> None:
        self.source = source
        self.size = size
        self.window: collections.deque[dict[str, Any]] = collections.deque()
        self.recent: collections.OrderedDict[str, int] = collections.OrderedDict()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        record = self.window.popleft() if self.window else next(self.source)
        if record.get("type") in ("entry", "link"):
            self.recent[str(record.get("entry_hash"))] = as_int(record.get("seq"), default=0)
            if len(self.recent) > self.size:
                self.recent.popitem(last=False)
        return record

    def peek(self) -> dict[str, Any] | None:
        """The next record, without taking it; None at the end."""
        if not self.window:
            try:
                self.window.append(next(self.source))
            except StopIteration:
                return None
        return self.window[0]

    def _fill(self) -> None:
        while len(self.window) < self.size:
            try:
                self.window.append(next(self.source))
            except StopIteration:
                return

    def later(self, seq: int) -> bool:
        """Whether an entry or link of ``seq`` comes within the window ahead."""
        self._fill()
        return any(r.get("type") in ("entry", "link") and r.get("seq") == seq for r in self.window)

    def lookup(self, entry_hash: str) -> int | None:
        """The seq of a recent or coming record with this entry hash."""
        if entry_hash in self.recent:
            return self.recent[entry_hash]
        self._fill()
        for record in self.window:
            if record.get("entry_hash") == entry_hash:
                return as_int(record.get("seq"), default=0)
        return None
