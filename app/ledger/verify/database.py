"""Verifying the chain kept in the database, in keyset batches (see app/ledger/reading.py).

Besides the walk, the database shows four things an export cannot: whether the subject
index agrees with each entry's subject ids (``index``), whether checkpoints that the
schedule must have made are missing (``uncovered``), whether every released disclosure
request has the entry it was released as (``unrecorded``), and whether every entry has
the released request it records (``unbacked``).
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
from typing import Any

from app.core.context import Context
from app.core.db import Database
from app.core.tx import Tx
from app.ledger import chain, checkpoints, signing
from app.ledger import repository as repo
from app.ledger import requests_repository as requests
from app.ledger.export_format import checkpoint_record
from app.ledger.reading import Reader, in_units
from app.ledger.verify.report import UNBACKED, UNCOVERED, UNRECORDED, Problem, Report
from app.ledger.verify.walk import Pins, Run, Walk, check_signatures, choose_start


async def _start(tx: Tx) -> tuple[list[dict[str, Any]], int, int]:
    """Every checkpoint, the first kept seq and the head's seq, read in one unit."""
    found = [checkpoint_record(cp) for cp in await repo.checkpoints_between(tx)]
    first, head = await repo.first(tx), await repo.head(tx)
    return found, first.seq if first is not None else 1, head.seq if head is not None else 0


async def _batch(
    tx: Tx, *, after: int, last: int, previous: str | None, follows: dict[str, int | None]
) -> list[dict[str, Any]]:
    """The next batch of entries as records, each marked when its subject index differs.

    Where an entry's prev_hash is not the hash of the row before it, the entry that
    hash belongs to is looked up here, so the walk can tell a reorder from an edit.
    """
    batch = await repo.entry_batch(tx, after=after, last=last)
    if not batch:
        return []
    index: dict[int, list[str]] = collections.defaultdict(list)
    for seq, subject in await repo.subject_index(
        tx, first_seq=batch[0].seq, last_seq=batch[-1].seq
    ):
        index[seq].append(subject)
    records = []
    for entry in batch:
        record: dict[str, Any] = {"type": "entry", **chain.content_of(entry)}
        record["prev_hash"], record["entry_hash"] = entry.prev_hash, entry.entry_hash
        if sorted(index.get(entry.seq, ())) != sorted(entry.subject_ids or ()):
            record["_index"] = False
        if entry.prev_hash != previous and entry.prev_hash not in follows:
            follows[entry.prev_hash] = await repo.seq_of_hash(tx, entry.prev_hash)
        previous = entry.entry_hash
        records.append(record)
    # Index rows of a missing entry need no check of their own: the gap is reported.
    return records


async def verify_database(read: Reader, ctx: Context, pins: Pins | None = None) -> Report:
    """Verify the whole kept chain in the database, held to ``pins`` too, and cross-check
    every released disclosure request against its entry."""
    report = Report(source="database")
    public = signing.ring(ctx.settings).public
    found, first_seq, head_seq = await read(_start)
    valid, signature_problem = check_signatures(found, public)
    report.checkpoints = len(valid)
    pins = pins or Pins()
    valid, signature_problem = pins.add_to(valid, signature_problem, public)
    start_seq, start_hash, report.anchor_seq = choose_start(first_seq, valid)
    follows: dict[str, int | None] = {}
    walk = Walk(
        report,
        valid,
        start=(start_seq, start_hash),
        lookup=follows.get,
        later=lambda _seq: False,  # read in seq order: a gap is a gap
    )
    early = walk.pin(start_seq - 1, start_hash)
    if early is not None:
        report.problem = early
        return report
    runner = Run(walk, signature_problem)
    after: int = 0
    previous: str | None = None
    while True:
        records = await read(
            functools.partial(
                _batch, after=after, last=head_seq, previous=previous, follows=follows
            )
        )
        if runner.feed(records) or len(records) < repo.BATCH:
            break
        after, previous = int(records[-1]["seq"]), str(records[-1]["entry_hash"])
    walked = runner.result()
    overdue = None
    if walked is None and report.last_seq and report.covered_to != report.last_seq:
        overdue = await read(
            functools.partial(_overdue, ctx=ctx, covered_to=report.covered_to or 0)
        )
        if overdue is None:
            report.notes.append(
                f"entries after seq {report.covered_to or 0} are not covered by a checkpoint yet"
            )
    after_anchor = report.anchor_seq or 0
    unrecorded = await read(functools.partial(_unrecorded_release, anchor=after_anchor))
    unbacked = await read(functools.partial(_unbacked_entry, after=after_anchor))
    report.problem = lowest(walked, overdue, unrecorded, unbacked)
    if (note := pins.describe()) is not None:
        report.notes.append(note)
    return report


async def verify_in_units(db: Database, ctx: Context, pins: Pins | None = None) -> Report:
    """Verify the database, each batch in a short unit of its own (the command line)."""
    return await verify_database(in_units(db), ctx, pins)


def lowest(*problems: Problem | None) -> Problem | None:
    """The problem at the lowest position, if any."""
    found = [p for p in problems if p is not None]
    return min(found, key=lambda p: p.seq) if found else None


async def _unrecorded_release(tx: Tx, *, anchor: int) -> Problem | None:
    """A released request whose ledger entry is missing or records another request.

    A release and its entry commit together, so each released request names an entry
    that records it; and a purge deletes the requests of the entries it removes, in the
    same commit as its signed anchor, so none names an entry at or below the anchor
    either. A ledger emptied or cut back, with its checkpoints, is still contradicted by
    the requests it released; so is a start cut off behind an anchor signed with the
    service's key by whoever holds it (a purge would have taken the requests along).
    """
    found = await requests.first_unrecorded_release(tx, after_seq=0)
    if found is None:
        return None
    if found.entry_request_id is None:
        behind = (
            f": it is behind the purge anchor at seq {anchor}, but a purge deletes the "
            "requests of the entries it removes, so entries were removed otherwise"
            if found.ledger_seq <= anchor
            else ""
        )
        return Problem(
            found.ledger_seq,
            UNRECORDED,
            f"disclosure request {found.request_id} was released as entry "
            f"{found.ledger_seq}, and there is no such entry{behind}",
        )
    return Problem(
        found.ledger_seq,
        UNRECORDED,
        f"disclosure request {found.request_id} was released as entry {found.ledger_seq}, "
        f"but that entry records request {found.entry_request_id}",
    )


async def _unbacked_entry(tx: Tx, *, after: int) -> Problem | None:
    """An entry that no released disclosure request was released as.

    Appending needs no right to change a row, so the triggers that refuse edits and
    deletions never see it: an entry added by hand, with hashes worked out as the service
    does, extends the chain as a release would, and the next checkpoint signs it. But a
    release writes its request in the same commit, so each entry after the signed anchor
    has a released request that names its seq and says what the entry says.
    """
    found = await requests.first_unbacked_entry(tx, after_seq=after)
    if found is None:
        return None
    if found.request_status is None:
        why = "there is no such request"
    elif found.request_status != "released":
        why = f"that request is {found.request_status}"
    elif found.request_seq != found.seq:
        why = f"that request was released as entry {found.request_seq}"
    else:
        why = f"that request says otherwise of its {', '.join(found.differs)}"
    return Problem(
        found.seq,
        UNBACKED,
        f"entry {found.seq} records disclosure request {found.request_id}, but {why}",
    )


async def _overdue(tx: Tx, *, ctx: Context, covered_to: int) -> Problem | None:
    """With checkpoints on a schedule, entries can be left uncovered only for a while.

    Deleting the checkpoints (by someone who owns the database) would otherwise leave a
    rewritten or cut chain looking intact: so an entry that two intervals (and five
    minutes) should have covered, and nothing does, is a failure. The same rule stops a
    checkpoint from being signed over it (app.ledger.checkpoints).
    """
    entry = await checkpoints.overdue_entry(tx, ctx, covered_to=covered_to)
    if entry is None:
        return None
    interval = dt.timedelta(seconds=ctx.settings.ledger_checkpoint_interval_seconds)
    return Problem(
        seq=entry.seq,
        kind=UNCOVERED,
        detail=f"no signed checkpoint covers this entry, recorded more than "
        f"{checkpoints.uncovered_allowance(ctx)} ago while checkpoints are made every "
        f"{interval}: checkpoints may have been removed",
    )
