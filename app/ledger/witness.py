"""The external witness: every signed checkpoint also goes somewhere the database's owner
cannot rewrite, so a ledger cut back together with its checkpoints is still found.

A checkpoint only pins the entries up to it while it stays in the database; someone who
owns the database can delete the newest entries and the checkpoints that name them,
and what remains is a shorter chain that verifies. A copy of each checkpoint kept
elsewhere (``smsreg ledger verify --witness PATH``) shows the ledger once reached
further, or held another hash there.

Sinks are behind :class:`Witness`, chosen by ``SMSREG_LEDGER_WITNESS``. The one built
in is an append-only JSON Lines file, meant for another volume (a WORM or append-only
mount, a replicated share) than the database's. A syslog or HTTP sink implements the
same one method; docs/ledger.md says what each must promise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson

from app.core.config import Settings


class Witness(Protocol):
    """Somewhere outside the database that keeps every checkpoint it is given."""

    def record(self, checkpoint: Mapping[str, Any]) -> None:
        """Keep one checkpoint (as exported: kind, seq, head_hash, created_at, key_id,
        signature); raise if it could not be kept, so the checkpoint is not made."""
        ...


class FileWitness:
    """Appends each checkpoint as one JSON line to a file, owner-only, synced to disk."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, checkpoint: Mapping[str, Any]) -> None:
        """Append one line (O_APPEND: never rewrites what is there) and fsync it."""
        line = orjson.dumps(dict(checkpoint), option=orjson.OPT_SORT_KEYS) + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def configured(settings: Settings) -> Witness | None:
    """The witness these settings name, or None when none is configured."""
    if settings.ledger_witness is None:
        return None
    return FileWitness(settings.ledger_witness)


class UnreadableWitness(ValueError):
    """A witness file that is not what a FileWitness writes."""


def configured_records(settings: Settings) -> list[dict[str, Any]]:
    """The checkpoints the configured witness file holds; none when no file is configured
    or none was written yet. UnreadableWitness or OSError if it cannot be read."""
    path = settings.ledger_witness
    if path is None or not path.exists():
        return []
    return read_file(path)


def read_file(path: Path) -> list[dict[str, Any]]:
    """The checkpoints a witness file holds, each labelled with its line."""
    records = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise UnreadableWitness(f"{path}: line {number} is not JSON") from None
            if not isinstance(record, dict) or not isinstance(record.get("seq"), int):
                raise UnreadableWitness(f"{path}: line {number} is not a checkpoint")
            label = f"the witnessed checkpoint #{record.get('id')} ({path.name} line {number})"
            records.append({**record, "label": label})
    return records
