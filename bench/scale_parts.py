"""bench/scale.py's keys, signed-in staff, purge under load, and report."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bulk import Rows
from run import PYTHON, ROOT, Phase, merge

from app.core.clock import SystemClock
from app.core.config import Settings
from app.core.context import Context
from app.core.crypto import Keys
from app.core.ids import new_id


def context(url: str, tmp: Path, keys: dict[str, str]) -> Context:
    """The service's own keys and settings, as the server will have them."""
    settings = Settings(
        database_url=url,
        state_dir=tmp / "state",
        **{f"{family}_keys": {"s1": key} for family, key in keys.items()},  # type: ignore[arg-type]
    )
    return Context(settings=settings, keys=Keys(settings), clock=SystemClock())


def staff_rows(ctx: Context, *, role: str, token: str, now: dt.datetime) -> Rows:
    """One staff account of ``role`` with a live session whose bearer token is ``token``
    (no password: the bench never logs in)."""
    staff_id = new_id("stf")
    return {
        "staff_accounts": [
            (staff_id, f"bench-{role}", "Bench", role, "!", now, 0, "bench", now),
        ],
        "staff_sessions": [
            (
                new_id("ses"),
                staff_id,
                ctx.keys.token_hash(token),
                ctx.keys.token.active_id,
                "127.0.0.1",
                now,
                now + dt.timedelta(hours=12),
                now,
            )
        ],  # fmt: skip
    }


def run_purge(
    env: dict[str, str],
    load_for: Callable[[float], list[tuple[str, str]]],
    phases: dict[str, list[Phase]],
) -> dict[str, Any]:
    """``smsreg purge`` in its own process while starts run; its time and their p99."""
    script = Path(PYTHON).parent / "smsreg"
    began = time.perf_counter()
    proc = subprocess.Popen(
        [str(script), "purge"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    during: list[Phase] = []
    while proc.poll() is None:
        load_for(2.0)
        during.append(phases["start_new"].pop())
    took = time.perf_counter() - began
    output = proc.stdout.read().decode() if proc.stdout else ""
    merged = merge("start during purge", during) if during else None
    print(output)
    return {
        "seconds": round(took, 1),
        "exit": proc.returncode,
        "output": output.splitlines()[-20:],
        "start_during": None
        if merged is None
        else {
            "rps": round(merged.rps, 1),
            "p99_ms": round(merged.p99_ms, 2),
            "errors": merged.errors,
        },
    }


def report(
    args: argparse.Namespace,
    rounds: dict[str, list[Phase]],
    sizes: dict[str, tuple[int, int]],
    seeded_s: float,
    purge: dict[str, Any] | None,
    database: dict[str, Any],
) -> dict[str, Any]:
    merged = {name: merge(name, parts) for name, parts in rounds.items() if parts}
    bare = merged["bare"]
    print(f"\n{args.subscribers:,} subscribers on {database['kind']}, {args.clients} clients")
    print(f"{'phase':<18}{'req/s':>9}{'of bare':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    shares = {}
    for name, p in merged.items():
        shares[name] = p.rps / bare.rps if bare.rps else 0.0
        print(
            f"{name:<18}{p.rps:>9.0f}{shares[name]:>9.1%}{p.p50_ms:>9.2f}{p.p99_ms:>9.2f}"
            f"{p.errors:>8}"
        )
        for sample in p.error_samples[:3]:
            print(f"  [{name}] {sample}")
    total = sum(size for size, _ in sizes.values())
    n = args.subscribers
    print(f"\ndatabase {total / 2**20:,.0f} MiB, {total / n:,.0f} B per subscriber (indexes in)")
    print(f"  {'table':<24}{'MiB':>9}{'rows':>12}{'B/row':>8}{'B/sub':>8}")
    for name, (size, rows) in sizes.items():
        print(f"  {name:<24}{size / 2**20:>9.1f}{rows:>12,}{size / rows:>8.0f}{size / n:>8.0f}")
    if purge is not None:
        during = purge["start_during"] or {}
        print(
            f"\npurge: {purge['seconds']} s (exit {purge['exit']}); start meanwhile "
            f"{during.get('rps')} req/s, p99 {during.get('p99_ms')} ms, "
            f"{during.get('errors')} answers other than 201"
        )
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average": os.getloadavg(),
        "subscribers": args.subscribers,
        "database": database,
        "seed_seconds": round(seeded_s, 1),
        "phases": {
            name: {
                "rps": round(p.rps, 1),
                "share_of_bare": round(shares[name], 4),
                "p50_ms": round(p.p50_ms, 2),
                "p99_ms": round(p.p99_ms, 2),
                "requests": p.requests,
                "errors": p.errors,
                "round_rps": p.round_rps,
            }
            for name, p in merged.items()
        },
        "bytes": {
            "total": total,
            "per_subscriber": round(total / n),
            "tables": {name: {"bytes": size, "rows": rows} for name, (size, rows) in sizes.items()},
        },
        "purge": purge,
        "errors": sum(p.errors for p in merged.values()),
    }
