"""The walk: records (entries and links, in seq order) through every chain check."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.ledger import canonical, chain, signing
from app.ledger.verify.report import (
    BAD_SIGNATURE,
    CHANGED,
    INDEX,
    MALFORMED,
    REMOVED,
    REORDERED,
    TRUNCATED,
    Problem,
    Report,
)

_HASH = re.compile(r"[0-9a-fA-F]{64}")


def signed_content(checkpoint: Mapping[str, Any]) -> tuple[str, int, str, dt.datetime, str]:
    """What a checkpoint's signature covers: its kind, seq, head hash, time and key id
    (KeyError, TypeError or ValueError for one that cannot be read so)."""
    created = checkpoint["created_at"]
    if isinstance(created, str):
        created = canonical.parse_timestamp(created)
    return (
        str(checkpoint["kind"]),
        int(checkpoint["seq"]),
        str(checkpoint["head_hash"]),
        created,
        str(checkpoint["key_id"]),
    )


def check_signatures(
    checkpoints: Iterable[Mapping[str, Any]], public: Mapping[str, Ed25519PublicKey]
) -> tuple[list[Mapping[str, Any]], Problem | None]:
    """The checkpoints whose signatures verify, and the lowest one that does not."""
    valid = []
    worst: Problem | None = None
    for checkpoint in checkpoints:
        try:
            kind, seq, head_hash, created, key_id = signed_content(checkpoint)
            message = signing.checkpoint_message(
                kind=kind, seq=seq, head_hash=head_hash, created_at=created, key_id=key_id
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
        seq = as_int(checkpoint.get("seq"), default=0)
        if worst is None or seq < worst.seq:
            worst = Problem(seq, BAD_SIGNATURE, f"checkpoint #{checkpoint.get('id')}: {why}")
    valid.sort(key=lambda cp: (int(cp["seq"]), int(cp.get("id") or 0)))
    return valid, worst


def name_of(checkpoint: Mapping[str, Any]) -> str:
    """How a report names a checkpoint, a witnessed one or a pinned head."""
    return str(checkpoint.get("label") or f"checkpoint #{checkpoint.get('id')}")


# What an entry and a link may hold (the database walk's own ``_index`` flag included).
_FIELDS = {
    "entry": frozenset(
        {"type", "v", *chain.CONTENT_FIELDS, *chain.OPTIONAL_FIELDS}
        | {"prev_hash", "entry_hash", "_index"}
    ),
    "link": frozenset({"type", "seq", "prev_hash", "content_sha256", "entry_hash"}),
}


@dataclass(frozen=True)
class Pins:
    """What the chain is held to besides its own checkpoints: checkpoints a witness kept
    (signed, checked like the database's) and heads an auditor pinned (``SEQ:HASH``)."""

    witnessed: Sequence[Mapping[str, Any]] = ()
    expected: Sequence[Mapping[str, Any]] = ()

    def add_to(
        self,
        valid: list[Mapping[str, Any]],
        signature_problem: Problem | None,
        public: Mapping[str, Ed25519PublicKey],
    ) -> tuple[list[Mapping[str, Any]], Problem | None]:
        """The checkpoints to walk with these pins among them, and the lowest bad signature."""
        witnessed, bad = check_signatures(self.witnessed, public)
        merged = [*valid, *witnessed, *self.expected]
        merged.sort(key=lambda cp: (int(cp["seq"]), int(cp.get("id") or 0)))
        problems = [p for p in (signature_problem, bad) if p is not None]
        return merged, min(problems, key=lambda p: p.seq) if problems else None

    def describe(self) -> str | None:
        """A note on what the chain was held to, or None when nothing."""
        if not self.witnessed and not self.expected:
            return None
        return (
            f"held to {len(self.witnessed)} witnessed checkpoint(s) and "
            f"{len(self.expected)} pinned head(s)"
        )


def expected_head(value: str) -> dict[str, Any]:
    """A head an auditor pinned, from ``SEQ:HASH``; ValueError if it is not one."""
    seq_text, _, head_hash = value.partition(":")
    if not seq_text.isdigit() or int(seq_text) < 1 or not _HASH.fullmatch(head_hash):
        raise ValueError(f"{value!r}: give SEQ:HASH, a seq from 1 and 64 hex digits")
    seq = int(seq_text)
    return {
        "kind": "pinned",
        "seq": seq,
        "head_hash": head_hash.lower(),
        "label": f"the pinned head --expect {seq}:{head_hash[:12]}...",
    }


def as_int(value: Any, *, default: int) -> int:
    """An int from a record's field, or ``default`` if it is not one."""
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
                    f"{name_of(checkpoint)} holds a different hash at seq {seq}: "
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
                digest = chain.content_hash(chain.hashed_content(record))
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
        extra = sorted(set(record) - _FIELDS[record["type"]])
        if extra:
            # Its hash covers the fields an export writes; one added beside them (a
            # forged note, say) would read as part of the entry.
            return Problem(seq, CHANGED, f"it holds fields no export writes: {', '.join(extra)}")
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
            checkpoint = max(self.checkpoints[self.next_cp :], key=lambda cp: int(cp["seq"]))
            at = (self.last or 0) + 1
            ends = f"the entries end at seq {self.last}" if self.last else "there are no entries"
            return Problem(
                at,
                TRUNCATED,
                f"{name_of(checkpoint)} commits to seq {checkpoint['seq']}, but {ends}",
            )
        return None


class Run:
    """Feeds records to a walk until it finds a problem or passes the lowest bad
    signature, then settles on the lowest broken position."""

    def __init__(self, walk: Walk, signature_problem: Problem | None) -> None:
        self.walk = walk
        self.signature_problem = signature_problem
        self.stop_at = None if signature_problem is None else signature_problem.seq
        self.problem: Problem | None = None
        self.stopped = False

    def feed(self, records: Iterable[Mapping[str, Any]]) -> bool:
        """Check these records; True once nothing more needs reading."""
        for record in records:
            if self.stop_at is not None and as_int(record.get("seq"), default=0) > self.stop_at:
                self.stopped = True
                return True
            self.problem = self.walk.feed(record)
            if self.problem is not None:
                self.stopped = True
                return True
        return False

    def result(self) -> Problem | None:
        """The lowest broken position, once every record was fed."""
        problem = self.problem
        if not self.stopped and self.stop_at is None:
            problem = self.walk.finish()
        candidates = [p for p in (problem, self.signature_problem) if p is not None]
        if not candidates:
            return None
        return min(candidates, key=lambda p: (p.seq, p.kind == BAD_SIGNATURE))


def run(
    records: Iterable[Mapping[str, Any]], walk: Walk, signature_problem: Problem | None
) -> Problem | None:
    """Walk every record; the lowest broken position, if any."""
    runner = Run(walk, signature_problem)
    runner.feed(records)
    return runner.result()
