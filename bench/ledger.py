"""Export and verify a ledger of 1,000,000 entries: rows/s and peak memory (< 150 MB).

    .venv/bin/python bench/ledger.py [--entries 1000000] [--database-url URL] [--keep]

Seeds a fresh database built by the migrations (SQLite in a temporary folder unless
--database-url names another) with real entries: real canonical hashing and chaining, one
or two subjects each, a signed checkpoint every 10,000 entries. Then each measured phase
runs in its own process, so its peak RSS is its own:

- export-jsonl / export-csv: a complete export to a file (``export.write``);
- verify-db: the whole chain in the database (``verify.verify_snapshot``);
- verify-file: the JSON Lines export, offline (``verify.verify_file``) with pinned keys.

Each prints seconds, rows/s and peak RSS, and the RSS right after the
imports, so what the phase itself costs is visible. Peak RSS is the kernel's VmHWM of the
phase's process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LIMIT_MB = 150
CHECKPOINT_EVERY = 10_000


def _rss_mb() -> float:
    """Peak RSS of this process's own address space (VmHWM). ru_maxrss is not used: on
    Linux it carries the parent's high-water mark across fork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _settings(workdir: Path):  # type: ignore[no-untyped-def]
    from app.core.config import Settings

    config = json.loads((workdir / "settings.json").read_text())
    return Settings(_env_file=None, **config)


def _runtime(workdir: Path):  # type: ignore[no-untyped-def]
    from app.core.clock import SystemClock
    from app.core.context import Context
    from app.core.crypto import Keys
    from app.core.db import Database

    settings = _settings(workdir)
    ctx = Context(settings=settings, keys=Keys(settings), clock=SystemClock())
    return Database.from_settings(settings), ctx


def _fields(seq: int, recorded_at: dt.datetime) -> dict[str, object]:
    """One released disclosure's content, varied as real ones are."""
    from app.ledger.rules import recipient_key

    ids = sorted(f"sub_{secrets.token_urlsafe(16)}" for _ in range(1 + seq % 2))
    basis = ("law", "investigation_compelled", "consent", "emergency_life_body_property")[seq % 4]
    consent = {i: {"granted_at": "2025-12-01T00:00:00.000000+00:00", "source": "web"} for i in ids}
    return {
        "recorded_at": recorded_at,
        "request_id": f"dsr_{seq:022d}",
        "recipient_organisation": f"Prefectural Police {seq % 47}",
        "recipient_officer": "Inspector on duty",
        "recipient_contact": "Investigations desk",
        "recipient_key": recipient_key(f"Prefectural Police {seq % 47}"),
        "legal_basis": basis,
        "purpose": "Investigation of coupon fraud reported by the operator",
        "request_reference": None
        if basis in ("consent", "emergency_life_body_property")
        else f"CCP 197(2) No. {seq}",
        "data_items": ["phone_number", "subscriber_id"],
        "subject_ids": ids,
        "requested_by": "stf_operator",
        "approved_by": "stf_officer_a",
        "released_by": "stf_officer_b",
        "necessity_review": "Only the numbers named in the request.",
        "approval_note": "Reviewed and approved.",
        "consent": consent if basis == "consent" else None,
        "package_sha256": secrets.token_hex(32),
        "package_csv_sha256": secrets.token_hex(32),
    }


async def _seed(workdir: Path, entries: int) -> None:
    from app.ledger import chain, checkpoints

    db, ctx = _runtime(workdir)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    seq = 0
    try:
        while seq < entries:
            async with db.transaction() as tx:
                await chain.lock(tx)
                for _ in range(min(CHECKPOINT_EVERY, entries - seq)):
                    seq += 1
                    entry = await chain.append(tx, _fields(seq, start + dt.timedelta(seconds=seq)))
                if seq % CHECKPOINT_EVERY == 0 or seq == entries:
                    await checkpoints.sign(
                        tx,
                        ctx,
                        kind="head",
                        seq=seq,
                        head_hash=entry.entry_hash,
                        now=ctx.clock.now(),
                    )
    finally:
        await db.dispose()


def seed(workdir: Path, database_url: str, entries: int) -> None:
    from app.core.migrations import upgrade

    key = lambda: base64.b64encode(secrets.token_bytes(32)).decode()  # noqa: E731
    config = {
        "database_url": database_url,
        "state_dir": str(workdir / "state"),
        **{f"{family}_keys": {"b1": key()} for family in ("phone", "index", "code", "token")},
        "ledger_signing_keys": {"b1": key()},
    }
    (workdir / "settings.json").write_text(json.dumps(config))
    upgrade(database_url)
    started = time.perf_counter()
    asyncio.run(_seed(workdir, entries))
    seconds = time.perf_counter() - started
    print(
        f"seed        {entries:>9} entries in {seconds:7.1f} s  ({entries / seconds:,.0f} rows/s)"
    )


async def _phase(workdir: Path, name: str) -> tuple[int, bool]:
    from app.ledger import export, signing
    from app.ledger.audit_schemas import ExportQuery
    from app.ledger.verify.database import verify_in_units
    from app.ledger.verify.files import verify_file

    db, ctx = _runtime(workdir)
    try:
        if name in ("export-jsonl", "export-csv"):
            fmt = name.split("-")[1]
            with (workdir / f"ledger.{fmt}").open("wb") as handle:
                summary = await export.write(db, ctx, ExportQuery(format=fmt), handle)
            return summary.entries, True
        if name == "verify-db":
            report = await verify_in_units(db, ctx)
            if not report.ok:
                print(json.dumps(report.as_dict()), file=sys.stderr)
            return report.entries, report.ok
        if name == "verify-file":
            keys = signing.ring(ctx.settings).public
            report = verify_file(workdir / "ledger.jsonl", public_keys=keys)
            return report.entries, report.ok
        raise SystemExit(f"unknown phase {name}")
    finally:
        await db.dispose()


def phase(workdir: Path, name: str) -> dict[str, float]:
    baseline = _rss_mb()
    started = time.perf_counter()
    rows, ok = asyncio.run(_phase(workdir, name))
    seconds = time.perf_counter() - started
    result = {
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "peak_rss_mb": _rss_mb(),
        "rss_after_imports_mb": baseline,
        "ok": ok,
    }
    print(json.dumps(result))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        phase(Path(args.workdir), args.phase)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="smsreg-ledger-bench-"))
    database_url = args.database_url or f"sqlite:///{workdir}/ledger.db"
    try:
        seed(workdir, database_url, args.entries)
        failed = False
        for name in ("export-jsonl", "export-csv", "verify-db", "verify-file"):
            done = subprocess.run(
                [sys.executable, __file__, "--phase", name, "--workdir", str(workdir)],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )
            if done.returncode != 0:
                print(done.stdout, done.stderr)
                return 1
            result = json.loads(done.stdout.strip().splitlines()[-1])
            size = ""
            if name.startswith("export"):
                path = workdir / f"ledger.{name.split('-')[1]}"
                size = f"  file {path.stat().st_size / 2**20:7.1f} MiB"
            verdict = "PASS" if result["peak_rss_mb"] < LIMIT_MB and result["ok"] else "FAIL"
            failed |= verdict == "FAIL"
            print(
                f"{name:<12}{result['rows']:>9} rows in {result['seconds']:7.1f} s  "
                f"({result['rows_per_s']:>9,.0f} rows/s)  "
                f"peak RSS {result['peak_rss_mb']:6.1f} MB "
                f"(after imports {result['rss_after_imports_mb']:5.1f} MB)  "
                f"ok={result['ok']}{size}  {verdict}"
            )
        return 1 if failed else 0
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
