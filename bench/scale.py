"""smsreg on a database of N subscribers with their history: requests against bare, and size.

    .venv/bin/python bench/scale.py [--subscribers 10000] [--db sqlite|postgres]

1. Creates a fresh database (bench/databases.py), migrates it with ``smsreg migrate``,
   creates an API key, and seeds N subscribers with their history through the
   service's own crypto in bulk (bench/seed.py), with a staff operator and a privacy
   officer signed in.
2. Serves smsreg on it and measures, in rounds as bench/run.py does (its load generator
   and servers, imported): the bare endpoint, start with new numbers, start with
   registered numbers, check (every verification the two starts made), an operator's
   masked search by number, and a privacy officer's reveal. Each smsreg phase is shown
   as a share of bare, with its p99.
3. Reports the database's bytes per subscriber, table by table (indexes included).

``--due-days D`` adds D days of what ``smsreg purge`` deletes; ``--purge`` then runs it
after the rounds, while a start load runs, and reports its time and that load's p99.
Writes bench/results/scale-<db>-<N>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import bulk  # bench/ is first on sys.path: run.py, seed.py and bulk.py beside this file
import databases
import run
from run import PYTHON, ROOT, Phase, Server, load, merge, random_ip

sys.path.insert(0, str(ROOT))

import seed  # noqa: E402

from app.core.clock import SystemClock  # noqa: E402
from app.core.config import Settings, new_key  # noqa: E402
from app.core.context import Context  # noqa: E402
from app.core.crypto import Keys  # noqa: E402
from app.staff.auth import TOKEN_PREFIX  # noqa: E402

FAMILIES = ("phone", "index", "code", "token")
REASON = "The customer asked support to confirm the number on file"
PHASES = ("start_new", "start_registered", "check", "search", "reveal")


def keyed_env(tmp: Path, url: str, keys: dict[str, str], cache_mb: int | None) -> dict[str, str]:
    """run.py's server environment, with this run's keys and staff without TOTP."""
    env = run.smsreg_env(tmp, url)
    for family, key in keys.items():
        env[f"SMSREG_{family.upper()}_KEYS"] = json.dumps({"s1": key})
    env["SMSREG_TOTP_REQUIRED_ROLES"] = "[]"
    if cache_mb is not None:
        env["SMSREG_SQLITE_CACHE_MB"] = str(cache_mb)
    return env


def context(url: str, tmp: Path, keys: dict[str, str]) -> Context:
    """The service's own keys and settings, as the server will have them."""
    settings = Settings(
        database_url=url,
        state_dir=tmp / "state",
        **{f"{family}_keys": {"s1": key} for family, key in keys.items()},  # type: ignore[arg-type]
    )
    return Context(settings=settings, keys=Keys(settings), clock=SystemClock())


class Requests:
    """Pre-encoded requests of each phase for one server."""

    def __init__(self, port: int, key: str, rng: random.Random) -> None:
        self.port, self.key, self.rng = port, key, rng

    def post(self, path: str, body: dict[str, Any], key: str | None = None) -> bytes:
        """One POST, with the API key or a staff token, from a random client address."""
        return run.encode_post(path, self.port, body, key=key or self.key, ip=random_ip(self.rng))

    def starts(self, phones: Sequence[str]) -> list[bytes]:
        """A start for each number."""
        return [
            self.post("/v1/verifications", {"phone": p, "purpose": "coupon_usage"}) for p in phones
        ]


def new_numbers(rng: random.Random, count: int, seeded: int) -> list[str]:
    """Valid numbers no seeded subscriber holds."""
    drawn = run.unique_phones(rng, count + count // 10 + 10)
    return [p for p in drawn if not seed.is_registered(p, seeded)][:count]


def measure(args: argparse.Namespace, tmp: Path, database: Any) -> dict[str, Any]:
    """Migrate, seed, serve and measure; the run's result."""
    rng = random.Random(args.seed)
    keys = {family: new_key() for family in FAMILIES}
    env = keyed_env(tmp, database.url, keys, args.cache_mb)
    run.smsreg_cli(env, "migrate")
    key = run.smsreg_cli(env, "api-keys", "create", "--name", "bench").strip().splitlines()[-1]
    ctx = context(database.url, tmp, keys)
    print(f"seeding {args.subscribers:,} subscribers ...", flush=True)
    began = time.perf_counter()
    sample = seed.seed(
        database.url,
        ctx,
        subscribers=args.subscribers,
        client_id=str(bulk.query(database.url, "SELECT id FROM api_keys")[0][0]),
        due_days=args.due_days,
        seed=args.seed,
        progress=lambda line: print(line, flush=True),
    )
    seeded_s = time.perf_counter() - began
    print(f"seeded in {seeded_s:.0f} s", flush=True)
    sizes = bulk.table_sizes(database.url)
    tokens = {role: TOKEN_PREFIX + os.urandom(24).hex() for role in ("operator", "privacy_officer")}
    out = bulk.writer(database.url)
    now = ctx.clock.now()
    for role, token in tokens.items():
        out.write(seed.staff_rows(ctx, role=role, token=token, now=now))
    out.conn.close()

    phases: dict[str, list[Phase]] = {name: [] for name in ("bare", *PHASES)}
    purge: dict[str, Any] | None = None
    servers: list[Server] = []
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    try:
        bare = Server(
            "bare",
            "bare_app:create_app",
            env=run.smsreg_env(tmp, ""),
            log=tmp / "bare.log",
            extra=["--app-dir", str(run.BENCH)],
        )
        servers.append(bare)
        app = Server(
            "smsreg", "app.main:create_app", env=env, log=tmp / "smsreg.log", extra=run.SMSREG_FLAGS
        )
        servers.append(app)
        bare.wait_ready()
        app.wait_ready()
        outbox = run.Outbox(tmp / "outbox.jsonl")
        req = Requests(app.port, key, rng)
        bare_requests = [
            run.encode_post(
                "/echo",
                bare.port,
                {"phone": "+819012345678", "purpose": "x"},
                key=key,
                ip=random_ip(rng),
            )
            for _ in range(1024)
        ] * (args.max_requests // 1024 + 1)
        # A purge under load takes as many new numbers as it lasts.
        fresh = new_numbers(rng, args.max_requests * (10 if args.purge else 1), args.subscribers)
        registered = [
            seed.registered_number(rng.randrange(args.subscribers))
            for _ in range(args.max_requests)
        ]
        registered = list(dict.fromkeys(registered))
        searches = [
            req.post("/v1/subscribers/search", {"phone": phone}, key=tokens["operator"])
            for _, phone in sample
        ] * 4
        reveals = [
            req.post(
                f"/v1/subscribers/{sid}/reveal", {"reason": REASON}, key=tokens["privacy_officer"]
            )
            for sid, _ in sample
        ] * 4
        rng.shuffle(searches)
        rng.shuffle(reveals)
        used = {"start_new": 0, "start_registered": 0, "search": 0, "reveal": 0}

        with asyncio.Runner(loop_factory=loop_factory) as runner:

            def phase(
                name: str,
                server: Server,
                requests: Sequence[bytes],
                seconds: float,
                expect: int,
                keep: bool = False,
            ) -> Phase:
                return load(
                    runner,
                    name,
                    server,
                    requests,
                    clients=args.clients,
                    seconds=seconds,
                    expect=expect,
                    keep_bodies=keep,
                )

            def started(name: str, phones: list[str], seconds: float) -> list[tuple[str, str]]:
                # At most one phase's worth encoded at a time (a purge runs many phases).
                chunk = phones[used[name] : used[name] + args.max_requests // 2]
                done = phase(name, app, req.starts(chunk), seconds, 201, True)
                pairs = run.started_ids(done, chunk)
                used[name] += done.requests
                phases[name].append(done)
                return pairs

            def checks(pairs: list[tuple[str, str]], seconds: float) -> Phase:
                missing = outbox.wait_for([p for _, p in pairs], timeout=60)
                if missing:
                    raise RuntimeError(f"{len(missing)} SMS never reached the outbox file")
                bodies = [
                    req.post(f"/v1/verifications/{vid}/check", {"code": outbox.codes[p]})
                    for vid, p in pairs
                ]
                return phase("check", app, bodies, seconds, 200)

            def staff(name: str, requests: list[bytes], seconds: float) -> Phase:
                done = phase(name, app, requests[used[name] :], seconds, 200)
                used[name] += done.requests
                return done

            print("warm-up ...", flush=True)
            phase("warm-up", bare, bare_requests, args.warmup, 200)
            checks(started("start_new", fresh, args.warmup), args.warmup)
            staff("search", searches, args.warmup)
            staff("reveal", reveals, args.warmup)
            phases["start_new"].clear()
            seconds = args.seconds / args.rounds
            for number in range(1, args.rounds + 1):
                print(f"round {number}/{args.rounds} ...", flush=True)
                phases["bare"].append(phase("bare", bare, bare_requests, seconds, 200))
                pairs = started("start_new", fresh, seconds)
                pairs += started("start_registered", registered, seconds)
                phases["check"].append(checks(pairs, seconds * 2))
                phases["search"].append(staff("search", searches, seconds))
                phases["reveal"].append(staff("reveal", reveals, seconds))
            if args.purge:
                purge = run_purge(env, lambda s: started("start_new", fresh, s), phases)
    finally:
        for server in servers:
            server.stop()
    return report(args, phases, sizes, seeded_s, purge, database.info())


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
            f"{during.get('rps')} req/s, p99 {during.get('p99_ms')} ms"
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    databases.add_options(parser)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument(
        "--due-days", type=int, default=0, help="days of history due for purge, seeded too"
    )
    parser.add_argument("--purge", action="store_true", help="time smsreg purge under load")
    parser.add_argument("--cache-mb", type=int, default=None, help="SMSREG_SQLITE_CACHE_MB")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="per phase, over the rounds")
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--max-requests", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    args.pgbench = False
    databases.check_options(parser, args)
    args.pgbench = False
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    tmp = Path(tempfile.mkdtemp(prefix="smsreg-scale-"))
    database = None
    try:
        database = databases.create(args.db, args.postgres_url, tmp)
        print(f"database: {database.describe()}", flush=True)
        result = measure(args, tmp, database)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if database is not None:
            database.close(keep=args.keep)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    path = args.json or run.BENCH / "results" / f"scale-{args.db}-{args.subscribers}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults written to {path}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
