"""Walk the chain and report the first place it is broken, and what broke.

Works on the database (a read snapshot, keyset batches) and on an export file (JSON
Lines or CSV, streamed), in constant memory. What is checked, in seq order:

- signatures: every checkpoint against the trusted public keys (``bad-signature``);
- start: the first entry is seq 1 after 64 zeros, or follows the newest signed purge
  anchor (a complete walk only; a filtered export starts where it starts);
- order: seqs run on without gaps (``removed``) and never back (``reordered``); an
  entry whose prev_hash is another entry's hash, not its predecessor's, is ``reordered``;
- content: each entry's hash recomputed from its fields and prev_hash (``changed``);
- checkpoints: the chain's hash at each checkpoint's seq equals the signed head hash
  (``changed``: rewritten with recomputed hashes), and no checkpoint lies beyond the
  last entry (``truncated``);
- database only: the subject index agrees with each entry's subject ids (``index``);
- file only: the end record is present and its counts agree (``truncated``).

The answer names the lowest broken position. Entries after the newest checkpoint can
be cut without a trace (nothing signed mentions them yet); the report says how far the
checkpoints reach.
"""

from __future__ import annotations

import collections
import csv
import datetime as dt
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.core.context import Context
from app.core.db import Database, Tx
from app.ledger import canonical, chain, signing
from app.ledger import repository as repo
from app.ledger.cells import uncell
from app.ledger.export import CSV_COLUMNS, EXPORT_FORMAT, NULLABLE

LOOKAHEAD = 1024

CHANGED = "changed"
REMOVED = "removed"
REORDERED = "reordered"
TRUNCATED = "truncated"
BAD_SIGNATURE = "bad-signature"
INDEX = "index"
MALFORMED = "malformed"


@dataclass(frozen=True)
class Problem:
    """The first broken position and what broke there."""

    seq: int
    kind: str
    detail: str


@dataclass
class Report:
    """The outcome of a verification."""

    source: str
    entries: int = 0
    links: int = 0
    checkpoints: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    complete: bool = True
    anchor_seq: int | None = None
    covered_to: int | None = None
    problem: Problem | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether nothing is broken."""
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "ok": self.ok,
            "source": self.source,
            "entries": self.entries,
            "links": self.links,
            "checkpoints": self.checkpoints,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "complete": self.complete,
            "anchor_seq": self.anchor_seq,
            "covered_to": self.covered_to,
            "problem": None
            if self.problem is None
            else {
                "seq": self.problem.seq,
                "kind": self.problem.kind,
                "detail": self.problem.detail,
            },
            "notes": self.notes,
        }

    def text(self) -> str:
        """One line (and notes) for people."""
        if self.problem is not None:
            line = f"BROKEN at seq {self.problem.seq}: {self.problem.kind}: {self.problem.detail}"
        else:
            span = (
                "no entries" if self.first_seq is None else f"seq {self.first_seq}..{self.last_seq}"
            )
            start = (
                "from genesis"
                if self.anchor_seq is None
                else f"from the signed purge anchor at seq {self.anchor_seq}"
            )
            kind = (
                f"chain intact {start}"
                if self.complete
                else "each entry unchanged and in place in the signed chain (filtered export: "
                "completeness of the filter is not provable)"
            )
            reach = (
                "no checkpoint yet"
                if self.covered_to is None
                else f"signed checkpoints reach seq {self.covered_to}"
            )
            line = (
                f"OK: {self.entries} entries, {self.links} links ({span}), "
                f"{self.checkpoints} checkpoints with valid signatures; {kind}; {reach}"
            )
        return "\n".join([line, *(f"note: {note}" for note in self.notes)])


# --- the walk --------------------------------------------------------------------------


def check_signatures(
    checkpoints: Iterable[Mapping[str, Any]], public: Mapping[str, Ed25519PublicKey]
) -> tuple[list[Mapping[str, Any]], Problem | None]:
    """The checkpoints whose signatures verify, and the lowest one that does not."""
    valid = []
    worst: Problem | None = None
    for checkpoint in checkpoints:
        try:
            created = checkpoint["created_at"]
            if isinstance(created, str):
                created = canonical.parse_timestamp(created)
            message = signing.checkpoint_message(
                kind=str(checkpoint["kind"]),
                seq=int(checkpoint["seq"]),
                head_hash=str(checkpoint["head_hash"]),
                created_at=created,
                key_id=str(checkpoint["key_id"]),
            )
            why = signing.verify_signature(
                public,
                key_id=str(checkpoint["key_id"]),
                message=message,
                signature=str(checkpoint["signature"]),
            )
        except (KeyError, TypeError, ValueError):
            why = "the checkpoint is malformed"
        if why is None:
            valid.append(checkpoint)
            continue
        seq = _int(checkpoint.get("seq"), default=0)
        if worst is None or seq < worst.seq:
            worst = Problem(seq, BAD_SIGNATURE, f"checkpoint #{checkpoint.get('id')}: {why}")
    valid.sort(key=lambda cp: (int(cp["seq"]), int(cp.get("id") or 0)))
    return valid, worst


def _int(value: Any, *, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def choose_start(first_seq: int, valid: list[Mapping[str, Any]]) -> tuple[int, str, int | None]:
    """Where a complete chain must start: (seq, prev hash, anchor seq or None)."""
    if first_seq > 1:
        anchors = [cp for cp in valid if cp["kind"] == "anchor" and int(cp["seq"]) < first_seq]
        if anchors:
            anchor = anchors[-1]
            return int(anchor["seq"]) + 1, str(anchor["head_hash"]), int(anchor["seq"])
    return 1, chain.GENESIS, None


class Walk:
    """Feeds records (entries and links, in order) through every chain check."""

    def __init__(
        self,
        report: Report,
        valid: list[Mapping[str, Any]],
        *,
        start: tuple[int, str] | None,
        lookup: Callable[[str], int | None],
        later: Callable[[int], bool],
    ) -> None:
        self.report = report
        self.checkpoints = valid
        self.next_cp = 0
        self.expected: int | None = None if start is None else start[0]
        self.running: str | None = None if start is None else start[1]
        self.lookup = lookup
        self.later = later
        self.last: int | None = None

    def pin(self, seq: int, running: str) -> Problem | None:
        """Compare every checkpoint at ``seq`` with the chain's hash there."""
        cps = self.checkpoints
        while self.next_cp < len(cps) and int(cps[self.next_cp]["seq"]) <= seq:
            checkpoint = cps[self.next_cp]
            self.next_cp += 1
            if int(checkpoint["seq"]) < seq:
                continue  # before the walked range: its signature is all we can check
            if checkpoint["head_hash"] != running:
                return Problem(
                    max(seq, 1),
                    CHANGED,
                    f"checkpoint #{checkpoint.get('id')} signed a different hash at seq {seq}: "
                    "an entry up to here was rewritten (hashes recomputed)",
                )
            self.report.covered_to = seq
        return None

    def feed(self, record: Mapping[str, Any]) -> Problem | None:
        """Check one record; the problem it shows, if any."""
        try:
            seq = int(record["seq"])
            prev_hash = str(record["prev_hash"])
            stored = str(record["entry_hash"])
            if record["type"] == "entry":
                content = {key: record[key] for key in ("v", *chain.CONTENT_FIELDS)}
                digest = chain.content_hash(content)
            else:
                digest = str(record["content_sha256"])
        except (KeyError, TypeError, ValueError, orjson.JSONEncodeError):
            at = self.expected if self.expected is not None else 0
            return Problem(at, MALFORMED, "a record lacks a field or has the wrong type")
        if self.expected is None:  # a filtered export starts anywhere
            self.expected, self.running = seq, prev_hash
            self.report.first_seq = seq
            problem = self.pin(seq - 1, prev_hash)
            if problem is not None:
                return problem
        elif self.report.first_seq is None:
            self.report.first_seq = seq
        if seq != self.expected:
            if seq > self.expected:
                if self.later(self.expected):
                    return Problem(
                        self.expected, REORDERED, f"entry {self.expected} comes after entry {seq}"
                    )
                missing = (
                    f"entry {self.expected} is missing"
                    if seq == self.expected + 1
                    else f"entries {self.expected}..{seq - 1} are missing"
                )
                return Problem(self.expected, REMOVED, missing)
            return Problem(seq, REORDERED, f"entry {seq} appears again after entry {seq}")
        if prev_hash != self.running:
            other = self.lookup(prev_hash)
            if other is not None and other != seq - 1:
                return Problem(
                    seq,
                    REORDERED,
                    f"the entry at seq {seq} follows the entry now at seq {other}, "
                    f"not entry {seq - 1}",
                )
            return Problem(seq, CHANGED, "its prev_hash is not the hash of the entry before it")
        if chain.entry_hash(seq=seq, prev_hash=prev_hash, content_sha256=digest) != stored:
            return Problem(seq, CHANGED, "its fields do not match its hash")
        if record.get("_index") is False:
            return Problem(
                seq, INDEX, "the subject index (ledger_entry_subjects) differs from subject_ids"
            )
        if record["type"] == "entry":
            self.report.entries += 1
        else:
            self.report.links += 1
        self.running = stored
        self.expected = seq + 1
        self.last = seq
        self.report.last_seq = seq
        return self.pin(seq, stored)

    def finish(self) -> Problem | None:
        """After the last record: no checkpoint may lie beyond it."""
        if self.next_cp < len(self.checkpoints):
            checkpoint = self.checkpoints[-1]
            at = (self.last or 0) + 1
            ends = f"the entries end at seq {self.last}" if self.last else "there are no entries"
            return Problem(
                at,
                TRUNCATED,
                f"checkpoint #{checkpoint.get('id')} commits to seq {checkpoint['seq']}, "
                f"but {ends}",
            )
        return None


def _run(
    report: Report,
    records: Iterable[Mapping[str, Any]],
    walk: Walk,
    signature_problem: Problem | None,
) -> Problem | None:
    stop_at = None if signature_problem is None else signature_problem.seq
    problem = None
    for record in records:
        if stop_at is not None and _int(record.get("seq"), default=0) > stop_at:
            break
        problem = walk.feed(record)
        if problem is not None:
            break
    else:
        if stop_at is None:
            problem = walk.finish()
    candidates = [p for p in (problem, signature_problem) if p is not None]
    return min(candidates, key=lambda p: (p.seq, p.kind == BAD_SIGNATURE)) if candidates else None


# --- the database ----------------------------------------------------------------------


def _db_records(tx: Tx) -> Iterator[dict[str, Any]]:
    for batch in repo.entry_batches(tx):
        first, last = int(batch[0]["seq"]), int(batch[-1]["seq"])
        index: dict[int, list[str]] = collections.defaultdict(list)
        for row in repo.subject_index(tx, first_seq=first, last_seq=last):
            index[int(row["seq"])].append(row["subject_id"])
        for row in batch:
            record = {"type": "entry", **chain.content_of(row)}
            record["prev_hash"], record["entry_hash"] = row["prev_hash"], row["entry_hash"]
            if sorted(index.get(int(row["seq"]), ())) != sorted(record["subject_ids"] or ()):
                record["_index"] = False
            yield record
        # Index rows of a missing entry need no check of their own: the gap is reported.


def verify_database(tx: Tx, ctx: Context) -> Report:
    """Verify the whole kept chain in the database (run it in :func:`repo.snapshot`)."""
    report = Report(source="database")
    public = signing.ring(ctx.settings).public
    valid, signature_problem = check_signatures(repo.checkpoints(tx), public)
    report.checkpoints = len(valid)
    first = repo.first(tx)
    start_seq, start_hash, report.anchor_seq = choose_start(
        int(first["seq"]) if first is not None else 1, valid
    )
    walk = Walk(
        report,
        valid,
        start=(start_seq, start_hash),
        lookup=lambda entry_hash: repo.seq_of_hash(tx, entry_hash),
        later=lambda _seq: False,  # read in seq order: a gap is a gap
    )
    early = walk.pin(start_seq - 1, start_hash)
    report.problem = early or _run(report, _db_records(tx), walk, signature_problem)
    if report.ok and report.last_seq and report.covered_to != report.last_seq:
        report.problem = _overdue(tx, ctx, covered_to=report.covered_to or 0)
        if report.ok:
            report.notes.append(
                f"entries after seq {report.covered_to or 0} are not covered by a checkpoint yet"
            )
    return report


def _overdue(tx: Tx, ctx: Context, *, covered_to: int) -> Problem | None:
    """With checkpoints on a schedule, entries can be left uncovered only for a while.

    Deleting the checkpoints (by someone who owns the database) would otherwise leave a
    rewritten or cut chain looking intact: so an entry that two intervals (and five
    minutes) should have covered, and nothing does, is a failure.
    """
    interval = ctx.settings.ledger_checkpoint_interval_seconds
    if interval <= 0:
        return None
    row = tx.one(
        "SELECT seq, recorded_at FROM ledger_entries WHERE seq > :seq ORDER BY seq LIMIT 1",
        {"seq": covered_to},
    )
    if row is None:
        return None
    allowed = dt.timedelta(seconds=2 * interval + 300)
    if ctx.clock.now() - row.recorded_at <= allowed:
        return None
    return Problem(
        seq=int(row.seq),
        kind="uncovered",
        detail=f"no signed checkpoint covers this entry, recorded more than {allowed} ago "
        "while checkpoints are made every "
        f"{dt.timedelta(seconds=interval)}: checkpoints may have been removed",
    )


def verify_snapshot(db: Database, ctx: Context) -> Report:
    """Verify the database from a read snapshot (never holds the write lock)."""
    with repo.snapshot(db) as tx:
        return verify_database(tx, ctx)


# --- export files ----------------------------------------------------------------------


class _Malformed(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _jsonl(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise _Malformed(f"line {number} is not JSON") from None
        if not isinstance(record, dict) or "type" not in record:
            raise _Malformed(f"line {number} is not a record")
        yield record


def _csv_value(name: str, text: str) -> Any:
    if name in ("v", "seq"):
        return int(text)
    text = uncell(text)
    if text == "" and name in NULLABLE:
        return None
    if name in chain.JSON_FIELDS:
        return orjson.loads(text)
    return text


def _csv(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    reader = csv.reader(
        io.TextIOWrapper(io.BufferedReader(_Bytes(lines)), encoding="utf-8", newline="")
    )
    header = next(reader, None)
    if header is None or tuple(header) != CSV_COLUMNS:
        raise _Malformed("the CSV header is not an smsreg ledger export's")
    for number, values in enumerate(reader, start=2):
        if len(values) != len(CSV_COLUMNS):
            raise _Malformed(f"CSV row {number} has {len(values)} cells")
        row = dict(zip(CSV_COLUMNS, values, strict=True))
        kind = row["record_type"]
        try:
            if kind == "entry":
                record: dict[str, Any] = {"type": "entry"}
                for name in ("v", *chain.CONTENT_FIELDS):
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
                for name in ("kind", "head_hash", "created_at", "key_id", "signature"):
                    record[name] = row[name]
                record["seq"] = int(row["seq"])
            elif kind == "key":
                record = {"type": "key", "key_id": row["key_id"], "public_key": row["public_key"]}
            elif kind in ("header", "end"):
                record = {"type": kind, **orjson.loads(row["meta"])}
            else:
                raise _Malformed(f"CSV row {number} has an unknown record_type")
        except (ValueError, orjson.JSONDecodeError):
            raise _Malformed(f"CSV row {number} has a malformed cell") from None
        yield record


class _Bytes(io.RawIOBase):
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


class _Lookahead:
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
            self.recent[str(record.get("entry_hash"))] = _int(record.get("seq"), default=0)
            if len(self.recent) > self.size:
                self.recent.popitem(last=False)
        return record

    def peek(self) -> dict[str, Any] | None:
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
        self._fill()
        return any(r.get("type") in ("entry", "link") and r.get("seq") == seq for r in self.window)

    def lookup(self, entry_hash: str) -> int | None:
        if entry_hash in self.recent:
            return self.recent[entry_hash]
        self._fill()
        for record in self.window:
            if record.get("entry_hash") == entry_hash:
                return _int(record.get("seq"), default=0)
        return None


def parse_public_keys(values: Iterable[str]) -> dict[str, Ed25519PublicKey]:
    """Trusted keys from ``KEY_ID:BASE64`` values or JSON files of the public-keys endpoint."""
    keys: dict[str, Ed25519PublicKey] = {}
    for value in values:
        path = Path(value)
        if path.is_file():
            document = orjson.loads(path.read_bytes())
            for item in document.get("keys", []):
                keys[str(item["key_id"])] = signing.load_public_key(str(item["public_key"]))
            continue
        key_id, sep, encoded = value.partition(":")
        if not sep or not key_id:
            raise ValueError(f"{value!r}: give KEY_ID:BASE64 or a public-keys JSON file")
        keys[key_id] = signing.load_public_key(encoded)
    return keys


def verify_lines(
    lines: Iterable[bytes],
    *,
    public_keys: Mapping[str, Ed25519PublicKey] | None = None,
    source: str = "export",
) -> Report:
    """Verify an export given as lines of bytes (JSON Lines or CSV, told apart by content)."""
    report = Report(source=source)
    iterator = iter(lines)
    first_line = next(iterator, b"")

    def again() -> Iterator[bytes]:
        yield first_line
        yield from iterator

    parsed = _jsonl(again()) if first_line.lstrip().startswith(b"{") else _csv(again())
    try:
        return _verify_records(report, parsed, public_keys)
    except _Malformed as exc:
        at = (report.last_seq or 0) + 1
        report.problem = Problem(at, MALFORMED, exc.detail)
        return report


def verify_file(path: Path, *, public_keys: Mapping[str, Ed25519PublicKey] | None = None) -> Report:
    """Verify an export file."""
    with path.open("rb") as handle:
        return verify_lines(handle, public_keys=public_keys, source=str(path))


def _verify_records(
    report: Report,
    parsed: Iterator[dict[str, Any]],
    trusted: Mapping[str, Ed25519PublicKey] | None,
) -> Report:
    header = next(parsed, None)
    if header is None or header.get("type") != "header" or header.get("format") != EXPORT_FORMAT:
        raise _Malformed(f"the first record is not an {EXPORT_FORMAT} header")
    report.complete = bool(header.get("complete"))
    records = _Lookahead(parsed)
    embedded: dict[str, Ed25519PublicKey] = {}
    checkpoints: list[dict[str, Any]] = []
    while (peeked := records.peek()) is not None and peeked.get("type") in ("key", "checkpoint"):
        record = next(records)
        if record["type"] == "key":
            try:
                embedded[str(record["key_id"])] = signing.load_public_key(str(record["public_key"]))
            except (KeyError, ValueError):
                raise _Malformed("a key record is malformed") from None
        else:
            checkpoints.append(record)
    if trusted is None:
        trusted = embedded
        report.notes.append(
            "signatures were checked against the public keys inside the export: that proves "
            "the file is consistent, not who signed it; pass --public-key to pin the keys"
        )
    valid, signature_problem = check_signatures(checkpoints, trusted)
    report.checkpoints = len(valid)
    start: tuple[int, str] | None = None
    peeked = records.peek()
    if report.complete:
        first_seq = _int(peeked.get("seq"), default=1) if peeked else 1
        start_seq, start_hash, anchor = choose_start(first_seq, valid)
        start, report.anchor_seq = (start_seq, start_hash), anchor
    walk = Walk(report, valid, start=start, lookup=records.lookup, later=records.later)
    early = None if start is None else walk.pin(start[0] - 1, start[1])

    end: list[dict[str, Any]] = []

    def body() -> Iterator[dict[str, Any]]:
        for record in records:
            kind = record.get("type")
            if kind in ("entry", "link"):
                yield record
            elif kind == "end":
                end.append(record)
                return
            else:
                raise _Malformed(f"a {kind!r} record among the entries")

    report.problem = early or _run(report, body(), walk, signature_problem)
    if report.problem is None:
        after = (report.last_seq or 0) + 1
        if not end:
            report.problem = Problem(after, TRUNCATED, "the export ends without its end record")
        elif (end[0].get("entries"), end[0].get("links")) != (report.entries, report.links):
            report.problem = Problem(
                after,
                TRUNCATED,
                f"the end record counts {end[0].get('entries')} entries and "
                f"{end[0].get('links')} links, the export holds {report.entries} and "
                f"{report.links}",
            )
        elif records.peek() is not None:
            raise _Malformed("records after the end record")
    if report.ok and not report.complete:
        report.notes.append(
            "filtered export: each entry is proven unchanged and in place, up to the "
            "checkpoint that covers it; whether the filter left out a matching entry "
            "cannot be proven from a filtered export"
        )
    if report.ok and report.last_seq and report.covered_to != report.last_seq:
        report.notes.append(
            f"entries after seq {report.covered_to or 0} are not covered by a checkpoint"
        )
    return report
