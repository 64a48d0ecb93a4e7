"""What a verification found: the first broken position and what broke, and the counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHANGED = "changed"
REMOVED = "removed"
REORDERED = "reordered"
TRUNCATED = "truncated"
BAD_SIGNATURE = "bad-signature"
INDEX = "index"
MALFORMED = "malformed"
UNCOVERED = "uncovered"
UNRECORDED = "unrecorded"
UNBACKED = "unbacked"
FILTERED = "filtered"


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
    filters: dict[str, Any] = field(default_factory=dict)
    problem: Problem | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether nothing is broken."""
        return self.problem is None

    def filter_text(self) -> str:
        """The filter the export states, as ``name=value, ...``."""
        return ", ".join(f"{name}={value}" for name, value in sorted(self.filters.items()))

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
            "filters": self.filters,
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
            # Nothing signed vouches for what is there: not shown broken, not shown sound.
            verdict = "UNPROVEN" if self.problem.kind == UNCOVERED else "BROKEN"
            line = (
                f"{verdict} at seq {self.problem.seq}: {self.problem.kind}: {self.problem.detail}"
            )
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
                else "each entry unchanged and in place in the signed chain (filtered export, "
                f"{self.filter_text()}: completeness of the filter is not provable)"
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
