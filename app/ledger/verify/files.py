"""Verifying an export file offline: any party with the file and the public keys."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.ledger import canonical, signing
from app.ledger.export_format import EXPORT_FORMAT
from app.ledger.rules import recipient_key
from app.ledger.verify.readers import Lookahead, Malformed, csv_records, jsonl_records
from app.ledger.verify.report import (
    FILTERED,
    MALFORMED,
    REMOVED,
    TRUNCATED,
    UNCOVERED,
    Problem,
    Report,
)
from app.ledger.verify.walk import (
    Pins,
    Walk,
    as_int,
    check_signatures,
    choose_start,
    run,
    signed_content,
)


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
    pins: Pins | None = None,
    filters: Mapping[str, str] | None = None,
) -> Report:
    """Verify an export given as lines of bytes (JSON Lines or CSV, told apart by content).

    A filtered export (entries that match a filter, links for the rest) is refused unless
    ``filters`` names the very filter it states (:func:`asked_filters`): whoever edits the
    file can call it filtered by whatever every entry it shows matches, and swap the
    others for links, so the person verifying says what they asked for."""
    report = Report(source=source)
    iterator = iter(lines)
    # A CSV saved again by a spreadsheet as "CSV UTF-8" starts with a byte order mark: it
    # marks the encoding, holds no value, and is read past.
    first_line = next(iterator, b"").removeprefix(codecs.BOM_UTF8)
    if not first_line.strip():
        report.problem = Problem(1, MALFORMED, "the export is empty")
        return report
    if not first_line.lstrip().startswith((b"{", b"record_type")):
        report.problem = Problem(
            1, MALFORMED, "not an smsreg ledger export (neither JSON Lines nor its CSV)"
        )
        return report

    def again() -> Iterator[bytes]:
        yield first_line
        yield from iterator

    parsed = (
        jsonl_records(again()) if first_line.lstrip().startswith(b"{") else csv_records(again())
    )
    try:
        return _verify_records(report, parsed, public_keys, pins or Pins(), filters)
    except Malformed as exc:
        at = (report.last_seq or 0) + 1
        report.problem = Problem(at, MALFORMED, exc.detail)
        return report


def verify_file(
    path: Path,
    *,
    public_keys: Mapping[str, Ed25519PublicKey] | None = None,
    pins: Pins | None = None,
    filters: Mapping[str, str] | None = None,
) -> Report:
    """Verify an export file (a filtered one only with its ``filters``: see verify_lines)."""
    with path.open("rb") as handle:
        return verify_lines(
            handle, public_keys=public_keys, source=str(path), pins=pins, filters=filters
        )


def _verify_records(
    report: Report,
    parsed: Iterator[dict[str, Any]],
    trusted: Mapping[str, Ed25519PublicKey] | None,
    pins: Pins,
    asked: Mapping[str, str] | None,
) -> Report:
    header = next(parsed, None)
    if header is None or header.get("type") != "header" or header.get("format") != EXPORT_FORMAT:
        raise Malformed(f"the first record is not an {EXPORT_FORMAT} header")
    filters = header.get("filters")
    if filters is None:
        filters = {}
    if not isinstance(filters, dict) or not set(filters) <= _FILTERS:
        raise Malformed("the header's filters are not an export's")
    # A filtered export names its filter: one that names none is read as complete, so an
    # entry left out of it (a link in its place) is found.
    report.filters = {name: value for name, value in filters.items() if value is not None}
    report.complete = bool(header.get("complete")) or not report.filters
    if isinstance(held := header.get("held_back"), str):
        # The exporter could sign no checkpoint over the newest entries: what the file
        # proves ends before them, and the ledger's own verification says why. The header
        # is signed by nothing: said as the file's claim, printable characters only (an
        # escape sequence would rewrite the verdict on the auditor's terminal).
        shown = "".join(c for c in held[:500] if c.isprintable())
        report.notes.append(f"the export's header says it left entries out: {shown}")
    stated = report.filter_text()
    if not report.complete and asked is None:
        report.problem = Problem(
            1,
            FILTERED,
            f"the export says it is filtered ({stated}): it cannot prove that no entry was "
            "left out; verify a filtered export you asked for with --filter, naming its filter",
        )
        return report
    try:
        stated_normal = _normal(report.filters)
    except ValueError:
        raise Malformed("the header's filters are not an export's") from None
    if asked is not None and _normal(asked) != stated_normal:
        report.problem = Problem(
            1,
            FILTERED,
            f"the export states the filter {stated or '(none: complete)'}, not the one asked for",
        )
        return report
    matches = _matcher(report.filters)
    records = Lookahead(parsed)
    embedded: dict[str, Ed25519PublicKey] = {}
    checkpoints: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...] | None] = set()
    while (peeked := records.peek()) is not None and peeked.get("type") in ("key", "checkpoint"):
        record = next(records)
        if record["type"] == "key":
            try:
                embedded[str(record["key_id"])] = signing.load_public_key(str(record["public_key"]))
            except (KeyError, ValueError):
                raise Malformed("a key record is malformed") from None
        else:
            # A copy proves nothing more, yet it counted as a second valid signature, and
            # its unsigned fields (the id) can differ: compared by what is signed.
            try:
                signed: tuple[Any, ...] | None = signed_content(record)
            except (KeyError, TypeError, ValueError):
                signed = None  # its signature check says what is wrong with it
            if signed is not None and signed in seen:
                raise Malformed(f"checkpoint #{record.get('id')} repeats a checkpoint")
            seen.add(signed)
            checkpoints.append(record)
    if trusted is None:
        trusted = embedded
        report.notes.append(
            "signatures were checked against the public keys inside the export: that proves "
            "the file is consistent, not who signed it; pass --public-key to pin the keys"
        )
    valid, signature_problem = check_signatures(checkpoints, trusted)
    report.checkpoints = len(valid)
    valid, signature_problem = pins.add_to(valid, signature_problem, trusted)
    if (note := pins.describe()) is not None:
        report.notes.append(note)
    start: tuple[int, str] | None = None
    peeked = records.peek()
    if report.complete:
        first_seq = as_int(peeked.get("seq"), default=1) if peeked else 1
        start_seq, start_hash, anchor = choose_start(first_seq, valid)
        start, report.anchor_seq = (start_seq, start_hash), anchor
    walk = Walk(report, valid, start=start, lookup=records.lookup, later=records.later)
    early = None if start is None else walk.pin(start[0] - 1, start[1])

    end: list[dict[str, Any]] = []
    hidden: list[dict[str, Any]] = []
    strays: list[dict[str, Any]] = []

    def body() -> Iterator[dict[str, Any]]:
        for record in records:
            kind = record.get("type")
            if kind == "link" and report.complete:
                # A complete export holds every entry whole: a link in it hides one.
                hidden.append(record)
            if kind == "entry" and not report.complete and not matches(record):
                strays.append(record)  # shown, yet not what the stated filter selects
            if kind in ("entry", "link"):
                yield record
            elif kind == "end":
                end.append(record)
                return
            else:
                raise Malformed(f"a {kind!r} record among the entries")

    report.problem = early or run(body(), walk, signature_problem)
    if report.problem is None and strays:
        report.problem = Problem(
            as_int(strays[0].get("seq"), default=(report.last_seq or 0) + 1),
            FILTERED,
            "the entry does not match the filter the export states: the header was changed",
        )
    if report.problem is None and hidden:
        seq = as_int(hidden[0].get("seq"), default=(report.last_seq or 0) + 1)
        report.problem = Problem(
            seq,
            REMOVED,
            "the export says it is complete but leaves this entry out (a link in its place)",
        )
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
            raise Malformed("records after the end record")
        else:
            report.problem = _range_claimed(header, report, after)
    if report.ok and not report.complete:
        report.notes.append(
            "filtered export: each entry is proven unchanged and in place, up to the "
            "checkpoint that covers it; whether the filter left out a matching entry "
            "cannot be proven from a filtered export"
        )
    if report.ok:
        report.problem = _unsigned(report)
    return report


def _unsigned(report: Report) -> Problem | None:
    """In a file, only a signed checkpoint proves anything: whoever can recompute hashes
    can rewrite, add or remove entries and the checkpoints with them. So every entry must
    be under a checkpoint signed by a trusted key (an export signs its head first), and a
    file with no entry must hold one (an emptied export holds none)."""
    if report.last_seq is None:
        if report.checkpoints:
            return None
        return Problem(
            1, UNCOVERED, "the export holds no entry and no signed checkpoint: it proves nothing"
        )
    if report.covered_to is not None and report.covered_to >= report.last_seq:
        return None
    first = (report.covered_to or 0) + 1
    return Problem(
        max(first, report.first_seq or first),
        UNCOVERED,
        "no signed checkpoint in the export covers this entry or those after it: whoever "
        "can recompute hashes could have written them (an export signs its head first "
        "unless --no-checkpoint is given)",
    )


_FILTERS = frozenset({"since", "until", "recipient", "legal_basis", "subject_id"})


def asked_filters(items: Iterable[str]) -> dict[str, str]:
    """The filter an auditor asked for, from ``NAME=VALUE`` items (names as an export's
    header writes them); ValueError naming what is wrong."""
    asked: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in _FILTERS or not value:
            raise ValueError(f"{item!r}: give NAME=VALUE, NAME one of {sorted(_FILTERS)}")
        asked[name] = value
    _normal(asked)  # a time that is not one is refused here
    return asked


def _normal(filters: Mapping[str, Any]) -> dict[str, Any]:
    """A filter as compared: times as instants, a recipient as its key."""
    normal: dict[str, Any] = {}
    for name, value in filters.items():
        if name in ("since", "until"):
            try:
                normal[name] = canonical.parse_timestamp(str(value))
            except ValueError:
                raise ValueError(f"{name}: not a time with its offset: {value!r}") from None
        elif name == "recipient":
            normal[name] = recipient_key(str(value))
        else:
            normal[name] = str(value)
    return normal


def _matcher(filters: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    """Whether an entry record is one the stated filter selects (as the export chose)."""
    times = _normal(filters)  # its times as instants (read before: they are times)
    since, until = times.get("since"), times.get("until")

    def matches(entry: Mapping[str, Any]) -> bool:
        try:
            at = canonical.parse_timestamp(str(entry.get("recorded_at")))
        except ValueError:
            raise Malformed("a time in the export is not a timestamp") from None
        subjects = entry.get("subject_ids")
        return (
            (since is None or at >= since)
            and (until is None or at < until)
            and filters.get("recipient", entry.get("recipient_key")) == entry.get("recipient_key")
            and filters.get("legal_basis", entry.get("legal_basis")) == entry.get("legal_basis")
            and (
                "subject_id" not in filters
                or (isinstance(subjects, list) and filters["subject_id"] in subjects)
            )
        )

    return matches


def _range_claimed(header: Mapping[str, Any], report: Report, after: int) -> Problem | None:
    """The header's range (first, last and head seq) is the range of the entries that
    follow: a file whose header claims more than it holds was cut, one that claims less
    was added to."""
    if not {"first_seq", "last_seq", "head_seq"} <= header.keys():
        raise Malformed("the header does not name its range (first_seq, last_seq, head_seq)")
    claimed = (header["first_seq"], header["last_seq"])
    held = (report.first_seq, report.last_seq)
    head = header["head_seq"]
    # A complete export runs to the head; a filtered one to a checkpoint at most the head.
    last = report.last_seq or 0
    head_wrong = not isinstance(head, int) or (head != last if report.complete else head < last)
    if claimed != held or head_wrong:
        holds = "no entry" if held[0] is None else f"{held[0]}..{held[1]}"
        return Problem(
            after,
            TRUNCATED,
            f"the header names seq {claimed[0]}..{claimed[1]} (head "
            f"{header.get('head_seq')}), the export holds {holds}",
        )
    return None
