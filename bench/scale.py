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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bulk  # bench/ is first on sys.path: run.py, seed.py and bulk.py beside this file
import databases
import run
import scale_parts
from run import ROOT, Phase, Server, load, random_ip

sys.path.insert(0, str(ROOT))

import seed  # noqa: E402

from app.core.key_material import new_key  # noqa: E402
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
    ctx = scale_parts.context(database.url, tmp, keys)
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
        out.write(scale_parts.staff_rows(ctx, role=role, token=token, now=now))
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
                purge = scale_parts.run_purge(env, lambda s: started("start_new", fresh, s), phases)
    finally:
        for server in servers:
            server.stop()
    return scale_parts.report(args, phases, sizes, seeded_s, purge, database.info())


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
