"""Throughput and latency of smsreg against a bare FastAPI endpoint, in one command.

    .venv/bin/python bench/run.py            # or: make bench
    .venv/bin/python bench/run.py --db postgres

Three phases, each at the same number of concurrent keep-alive clients (16 by default),
measured in turn over several rounds (``--rounds``, 3) so that all three meet the
machine at the same speeds:

1. bare   POST /echo on bench/bare_app.py: FastAPI + pydantic body, nothing else.
2. start  POST /v1/verifications with a unique mobile number per request.
3. check  POST /v1/verifications/{id}/check with the right code, once for each
          verification that phase 2 created (codes read from the console outbox file).

With ``--floor``, two more phases after bare: the **floors** of start and check, each
route's parameters, dependencies and middleware with none of its work (bench/floor_app.py,
a third server on the same database), so that each one's cost splits into the
framework's and its own.

smsreg runs on a fresh SQLite file, or with ``--db postgres`` on a throwaway database on
the local PostgreSQL server, migrated by ``smsreg migrate`` and dropped at the end (see
bench/databases.py). Both servers run as their own uvicorn process (uvloop, httptools,
one worker) on 127.0.0.1; the load generator is this process (raw asyncio streams,
pre-encoded requests, status line + Content-Length parsing). Every loop is bounded by a
request count and a deadline. Prints a table, the smsreg/bare ratios with PASS/FAIL
against the database's targets, and writes bench/results/latest.json. Exit status: 0
when every request succeeded, 1 when any failed (or a server did not start, or a bench
database could not be dropped), 3 with --strict when a target fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import http.client
import itertools
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import databases  # bench/databases.py: this script's directory is first on sys.path

HOST = "127.0.0.1"  # the servers' and the load's only address (PostgreSQL: --postgres-url)
ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results" / "latest.json"
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Targets per database: smsreg's req/s as a share of the bare endpoint's (one uvicorn
# worker each, same clients), and check's p99.
TARGETS: dict[str, dict[str, float]] = {
    "sqlite": {"check_ratio": 0.30, "start_ratio": 0.15, "check_p99_ms": 25.0},
    "postgres": {"check_ratio": 0.25, "start_ratio": 0.12, "check_p99_ms": 50.0},
}

UVICORN_FLAGS = [
    "--host",
    HOST,
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--workers",
    "1",
    "--no-access-log",
    "--log-level",
    "warning",
]
# smsreg applies SMSREG_TRUSTED_PROXIES to X-Forwarded-For itself; uvicorn's own proxy
# headers (on by default, trusting 127.0.0.1) would rewrite the client address first.
# The bare server keeps uvicorn's default: it is the baseline as uvicorn ships.
SMSREG_FLAGS = ["--no-proxy-headers"]
MOBILE_PREFIXES = ("+8190", "+8180", "+8170")
# --floor: the routes of bench/floor_app.py, by the real route they mirror, and the
# status each answers.
FLOORS = {"start": 201, "check": 200}
CODE_RE = re.compile(r"#(\d+)\s*$")


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """A uvicorn subprocess that this script started and stops."""

    def __init__(
        self,
        name: str,
        app: str,
        *,
        env: dict[str, str],
        log: Path,
        extra: Sequence[str] = (),
        profile: Path | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.log = log
        self._log_handle = log.open("wb")
        python = [PYTHON]
        if profile is not None:  # cProfile of the main thread, written when the server stops
            python += ["-m", "cProfile", "-o", str(profile)]
        cmd = [*python, "-m", "uvicorn", app, "--factory", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*cmd, *UVICORN_FLAGS, *extra],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}\n{self.tail()}")
            conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s\n{self.tail()}")

    def cpu_seconds(self) -> tuple[float, float]:
        """User and system CPU time of the server process so far."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0, 0.0
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK

    def tail(self, lines: int = 30) -> str:
        self._log_handle.flush()
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log_handle.close()


# --------------------------------------------------------------------------- load generator


@dataclass
class Phase:
    """What one load phase measured."""

    name: str
    clients: int
    requests: int = 0
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    server_cpu: float = 0.0  # share of one core used by the server during the phase
    server_sys: float = 0.0  # the part of server_cpu spent in the kernel
    loadgen_cpu: float = 0.0  # share of one core used by this process during the phase
    error_samples: list[str] = field(default_factory=list)
    round_rps: list[float] = field(default_factory=list)  # each round's req/s, when merged
    # Response bodies by request index (only when asked for; not written to JSON).
    bodies: dict[int, bytes] = field(default_factory=dict, repr=False)
    # Every latency in seconds, ascending (not written to JSON): rounds are merged by them.
    latencies: list[float] = field(default_factory=list, repr=False)


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def _content_length(head: bytes) -> int:
    start = head.lower().find(b"\r\ncontent-length:")
    if start < 0:
        raise ValueError(f"response without Content-Length: {head[:200]!r}")
    start += len(b"\r\ncontent-length:")
    return int(head[start : head.index(b"\r\n", start)])


async def _client(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    requests: Sequence[bytes],
    cursor: itertools.count[int],
    deadline: float,
    keep_bodies: bool,
    out: list[tuple[int, int, float, bytes | None]],
    failures: list[str],
) -> None:
    """One keep-alive connection sending requests one after another until done."""
    clock = time.perf_counter
    total = len(requests)
    append = out.append
    try:
        while True:
            index = next(cursor)
            if index >= total or clock() >= deadline:
                return
            started = clock()
            writer.write(requests[index])
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(_content_length(head))
            elapsed = clock() - started
            status = int(head[9:12])
            append((index, status, elapsed, body if keep_bodies or status >= 300 else None))
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        failures.append(f"connection error: {exc!r}")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _run_phase(
    port: int,
    requests: Sequence[bytes],
    *,
    clients: int,
    seconds: float,
    keep_bodies: bool,
) -> tuple[list[tuple[int, int, float, bytes | None]], list[str], float]:
    cursor = itertools.count()
    out: list[tuple[int, int, float, bytes | None]] = []
    failures: list[str] = []
    connections = await asyncio.wait_for(
        asyncio.gather(*(asyncio.open_connection(HOST, port) for _ in range(clients))), timeout=10
    )
    started = time.perf_counter()  # the clock starts once every client is connected
    deadline = started + seconds
    tasks = [
        asyncio.ensure_future(
            _client(reader, writer, requests, cursor, deadline, keep_bodies, out, failures)
        )
        for reader, writer in connections
    ]
    # In-flight requests get a grace period after the deadline; then everything is cut.
    done, pending = await asyncio.wait(tasks, timeout=seconds + 30)
    for task in pending:
        task.cancel()
        failures.append("client still waiting for an answer 30 s after the deadline")
    if pending:
        await asyncio.wait(pending)
    for task in done:
        if task.exception() is not None:
            failures.append(f"client crashed: {task.exception()!r}")
    return out, failures, time.perf_counter() - started


def load(
    runner: asyncio.Runner,
    name: str,
    server: Server,
    requests: Sequence[bytes],
    *,
    clients: int,
    seconds: float,
    expect: int,
    keep_bodies: bool = False,
) -> Phase:
    """Run one phase: ``clients`` connections until ``seconds`` pass or requests run out."""
    gc.collect()
    gc.disable()
    (user, system), cpu_self = server.cpu_seconds(), time.process_time()
    try:
        out, failures, elapsed = runner.run(
            _run_phase(
                server.port, requests, clients=clients, seconds=seconds, keep_bodies=keep_bodies
            )
        )
    finally:
        gc.enable()
    phase = Phase(name=name, clients=clients, seconds=elapsed)
    user_after, system_after = server.cpu_seconds()
    phase.server_cpu = (user_after - user + system_after - system) / elapsed
    phase.server_sys = (system_after - system) / elapsed
    phase.loadgen_cpu = (time.process_time() - cpu_self) / elapsed
    latencies = sorted(item[2] for item in out)
    phase.requests = len(out)
    for index, status, _, body in out:
        if status == expect:
            phase.ok += 1
            if keep_bodies and body is not None:
                phase.bodies[index] = body
        else:
            phase.errors += 1
            if len(phase.error_samples) < 5:
                phase.error_samples.append(
                    f"HTTP {status}: {(body or b'')[:300].decode(errors='replace')}"
                )
    phase.errors += len(failures)
    phase.error_samples.extend(failures[:5])
    phase.latencies = latencies
    return summarise(phase)


def summarise(phase: Phase) -> Phase:
    """Fill in the rate and the percentiles from the counts, time and latencies."""
    latencies = phase.latencies
    phase.rps = phase.ok / phase.seconds if phase.seconds > 0 else 0.0
    phase.p50_ms = percentile(latencies, 50) * 1000
    phase.p90_ms = percentile(latencies, 90) * 1000
    phase.p99_ms = percentile(latencies, 99) * 1000
    phase.max_ms = (latencies[-1] if latencies else 0.0) * 1000
    return phase


def merge(name: str, rounds: Sequence[Phase]) -> Phase:
    """One endpoint's rounds as one phase: all its requests over all its measured time."""
    total = Phase(name=name, clients=rounds[0].clients)
    for part in rounds:
        total.requests += part.requests
        total.ok += part.ok
        total.errors += part.errors
        total.seconds += part.seconds
        total.server_cpu += part.server_cpu * part.seconds
        total.server_sys += part.server_sys * part.seconds
        total.round_rps.append(round(part.rps, 1))
        total.loadgen_cpu += part.loadgen_cpu * part.seconds
        total.error_samples.extend(part.error_samples[: 5 - len(total.error_samples)])
        total.latencies.extend(part.latencies)
    if total.seconds > 0:
        total.server_cpu /= total.seconds
        total.server_sys /= total.seconds
        total.loadgen_cpu /= total.seconds
    total.latencies.sort()
    return summarise(total)


# --------------------------------------------------------------------------- requests


def encode_post(path: str, port: int, payload: dict[str, Any], *, key: str, ip: str) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {HOST}:{port}\r\n"
        f"Authorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\n"
        f"X-Forwarded-For: {ip}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def random_ip(rng: random.Random) -> str:
    """A client address for X-Forwarded-For (a header only; nothing is sent to it)."""
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def unique_phones(rng: random.Random, count: int) -> list[str]:
    """Distinct valid Japanese mobile numbers, spread over every limit prefix.

    +81 90/80/70, then a digit 1-9 (a 0 there is not a mobile range), then 7 digits:
    270 limit prefixes of 4 national digits (7010 ... 9099) share the load.
    """
    span = 9 * 10**7
    return [
        f"{MOBILE_PREFIXES[n // span]}{n % span + 10**7:08d}"
        for n in rng.sample(range(len(MOBILE_PREFIXES) * span), count)
    ]


# --------------------------------------------------------------------------- smsreg set-up


def smsreg_env(tmp: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSREG_")}
    env.update(
        {
            "SMSREG_ENVIRONMENT": "development",
            "SMSREG_DATABASE_URL": database_url,
            "SMSREG_STATE_DIR": str(tmp / "state"),
            "SMSREG_SMS_SENDER": "console",
            "SMSREG_CONSOLE_OUTBOX": str(tmp / "outbox.jsonl"),
            "SMSREG_CONSOLE_PRINT": "false",
            "SMSREG_OUTBOX_DISPATCH": "background",
            "SMSREG_LOG_LEVEL": "WARNING",
            # Limits high enough never to refuse a benchmark request; the counting
            # they do on every start is still paid, as in production.
            "SMSREG_SENDS_PER_NUMBER_HOUR": "1000",
            "SMSREG_SENDS_PER_NUMBER_DAY": "1000",
            "SMSREG_SENDS_PER_IP_HOUR": "100000",
            "SMSREG_SENDS_PER_PREFIX_HOUR": "100000",
            "SMSREG_SENDS_PER_COUNTRY_HOUR": "1000000",
            # No benchmark start is ever checked, so once its grace period had passed
            # the pumping guard would block every number range a run sends to (minutes
            # into a purge under load, most starts were refused). Judged only past this
            # many sends in an hour, as a range under ordinary traffic never is.
            "SMSREG_PUMPING_MIN_SENDS": "1000000000",
            # Requests carry a random X-Forwarded-For from 127.0.0.1, so each counts as
            # its own client address (see SMSREG_FLAGS).
            "SMSREG_TRUSTED_PROXIES": HOST,
        }
    )
    return env


def smsreg_cli(env: dict[str, str], *args: str) -> str:
    script = Path(PYTHON).parent / "smsreg"
    cmd = [str(script)] if script.exists() else [PYTHON, "-c", "from app.cli import main; main()"]
    done = subprocess.run(
        [*cmd, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"smsreg {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class Outbox:
    """Reads the console sender's JSON Lines file as it grows: phone -> latest code."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.codes: dict[str, str] = {}

    def poll(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1  # only whole lines; a partial one is read next time
        self.offset += end
        for line in data[:end].splitlines():
            message = json.loads(line)
            match = CODE_RE.search(message["body"].splitlines()[-1])
            if match:
                self.codes[message["to"]] = match.group(1)

    def wait_for(self, phones: Sequence[str], timeout: float) -> list[str]:
        """Wait until every phone has a code; return the ones still missing at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            missing = [phone for phone in phones if phone not in self.codes]
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.1)


def started_ids(phase: Phase, phones: Sequence[str]) -> list[tuple[str, str]]:
    """(verification id, phone) for every successful start of a phase, in request order."""
    return [
        (json.loads(phase.bodies[index])["id"], phones[index]) for index in sorted(phase.bodies)
    ]


# --------------------------------------------------------------------------- report


def fmt_row(phase: Phase) -> str:
    return (
        f"{phase.name:<42}{phase.requests:>9}{phase.errors:>7}{phase.rps:>10.0f}"
        f"{phase.p50_ms:>9.2f}{phase.p90_ms:>9.2f}{phase.p99_ms:>9.2f}"
        f"{phase.server_cpu * 100:>8.0f}%{phase.loadgen_cpu * 100:>8.0f}%"
    )


def report(
    phases: dict[str, Phase],
    args: argparse.Namespace,
    database: dict[str, Any],
    pgbench: dict[str, Any] | None,
) -> dict[str, Any]:
    bare, start, check = phases["bare"], phases["start"], phases["check"]
    floors = {name: phases[f"floor_{name}"] for name in FLOORS if f"floor_{name}" in phases}
    listed = (bare, *floors.values(), start, check)
    db = database["kind"]
    print()
    print(
        f"{'endpoint':<42}{'requests':>9}{'errors':>7}{'req/s':>10}"
        f"{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'server':>9}{'loadgen':>9}"
    )
    for phase in listed:
        print(fmt_row(phase))
    print("(server/loadgen: CPU used during the phase, as a share of one core)")
    for phase in listed:
        rounds = " / ".join(f"{rps:.0f}" for rps in phase.round_rps)
        print(
            f"  {phase.name.split()[-1]}: req/s by round {rounds}; "
            f"server CPU in the kernel {phase.server_sys * 100:.0f}%"
        )
    for phase in listed:
        if phase.loadgen_cpu > 0.8:
            print(
                f"warning: the load generator was busy during {phase.name!r}; it may be the limit"
            )
    start_ratio = start.rps / bare.rps if bare.rps else 0.0
    check_ratio = check.rps / bare.rps if bare.rps else 0.0
    goal = TARGETS[db]
    targets = [
        {
            "db": db,
            "name": f"check req/s >= {goal['check_ratio']:.0%} of bare",
            "value": check_ratio,
            "passed": check_ratio >= goal["check_ratio"],
        },
        {
            "db": db,
            "name": f"start req/s >= {goal['start_ratio']:.0%} of bare",
            "value": start_ratio,
            "passed": start_ratio >= goal["start_ratio"],
        },
        {
            "db": db,
            "name": f"check p99 < {goal['check_p99_ms']:g} ms",
            "value": check.p99_ms,
            "passed": check.p99_ms < goal["check_p99_ms"],
        },
    ]
    print()
    print(f"ratio start/bare = {start_ratio:.1%}   ({start.rps:.0f} / {bare.rps:.0f} req/s)")
    print(f"ratio check/bare = {check_ratio:.1%}   ({check.rps:.0f} / {bare.rps:.0f} req/s)")
    ratios = {"start_over_bare": start_ratio, "check_over_bare": check_ratio}
    for name, floor in floors.items():
        real = phases[name]
        if not (floor.rps and bare.rps and real.rps):
            continue
        # Per request: the floor's time is the framework's and authentication's, the rest
        # of the real route's is its own work.
        ratios[f"floor_{name}_over_bare"] = floor.rps / bare.rps
        ratios[f"{name}_over_floor"] = real.rps / floor.rps
        print(f"ratio {name} floor/bare = {floor.rps / bare.rps:.1%}   ({floor.rps:.0f} req/s)")
        own = 1e6 / real.rps - 1e6 / floor.rps
        print(
            f"  per request: bare {1e6 / bare.rps:.0f} us, {name} floor {1e6 / floor.rps:.0f} us, "
            f"{name} {1e6 / real.rps:.0f} us (its own work {own:.0f} us)"
        )
    if pgbench is not None:
        print()
        rows = {
            f"smsreg {name} ({db})": (phases[name].rps, phases[name].p50_ms)
            for name in ("start", "check")
        }
        print("\n".join(databases.pgbench_lines(pgbench, rows)))
    print()
    for target in targets:
        shown = (
            f"{target['value']:.2f} ms"
            if target["name"].startswith("check p99")
            else f"{target['value']:.1%}"
        )
        verdict = "PASS" if target["passed"] else "FAIL"
        print(f"{verdict}  {db + ':':<10}{target['name']:<32} measured {shown}")
    errors = sum(phase.errors for phase in phases.values())
    print()
    if errors:
        print(f"ERRORS: {errors} request(s) failed")
        for phase in phases.values():
            for sample in phase.error_samples:
                print(f"  [{phase.name}] {sample}")
    else:
        print("errors: none")

    if pgbench is not None and "tps" in pgbench:
        ratios["start_over_pgbench_tps"] = start.rps / pgbench["tps"]
        ratios["check_over_pgbench_tps"] = check.rps / pgbench["tps"]

    def public(phase: Phase) -> dict[str, Any]:
        data = asdict(phase)
        data.pop("bodies")
        data.pop("latencies")
        return data

    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "config": {
            "clients": args.clients,
            "warmup_seconds": args.warmup,
            "bare_seconds": args.bare_seconds,
            "start_seconds": args.start_seconds,
            "check_max_seconds": args.check_seconds,
            "rounds": args.rounds,
            "floor_seconds": args.floor_seconds if args.floor else None,
            "db": db,
            "uvicorn_flags": {"bare": UVICORN_FLAGS, "smsreg": UVICORN_FLAGS + SMSREG_FLAGS},
        },
        "database": database,
        "phases": {name: public(phase) for name, phase in phases.items()},
        "ratios": ratios,
        "pgbench": pgbench,
        "targets": targets,
        "errors": errors,
    }


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    databases.add_options(parser)
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds of warm-up per phase")
    parser.add_argument("--bare-seconds", type=float, default=6.0)
    parser.add_argument("--start-seconds", type=float, default=8.0)
    parser.add_argument(
        "--check-seconds",
        type=float,
        default=20.0,
        help="upper bound; check runs once over every verification start created",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measure bare, start and check in turn this many times (each a share of the "
        "phase's seconds), so a machine that speeds up or slows down meets all three",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure the floors: the start and check routes' shapes with none of "
        "their work (bench/floor_app.py)",
    )
    parser.add_argument("--floor-seconds", type=float, default=4.0)
    parser.add_argument("--max-requests", type=int, default=60_000, help="cap per phase")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, default=RESULTS, help="result file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run smsreg under cProfile and write its stats here (slows it down)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 3 when a target fails")
    parser.add_argument(
        "--outbox",
        choices=("in-process", "worker"),
        default="in-process",
        help="who sends the SMS: the server process (the default), or `smsreg worker` as a "
        "process of its own (SMSREG_OUTBOX_DISPATCH=external)",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    databases.check_options(parser, args)
    return args


def main() -> int:
    args = parse_args()
    # SIGTERM ends the run as Ctrl-C does: servers stopped, bench database dropped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="smsreg-bench-"))
    phases: dict[str, Phase] = {}
    servers: list[Server] = []
    workers: list[subprocess.Popen[bytes]] = []
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    database: databases.SqliteDatabase | databases.PostgresDatabase | None = None
    leftover = False  # a database this run created and could not drop
    print(f"smsreg bench: {args.clients} clients, {os.cpu_count()} CPUs, work dir {tmp}")
    pgbench: dict[str, Any] | None = None
    try:
        pgbench_bin = databases.find_pgbench() if args.pgbench else ""
        database = databases.create(args.db, args.postgres_url, tmp)
        print(f"database: {database.describe()}", flush=True)
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            # 1. bare FastAPI
            env = {k: v for k, v in os.environ.items() if not k.startswith("SMSREG_")}
            bare = Server(
                "bare",
                "bare_app:create_app",
                env=env,
                log=tmp / "bare.log",
                extra=["--app-dir", str(BENCH)],
            )
            servers.append(bare)
            bare.wait_ready()
            payload = {"phone": "+819012345678", "purpose": "coupon_usage"}
            fake_key = "smsreg_sk_" + "x" * 43
            bare_requests = [
                encode_post("/echo", bare.port, payload, key=fake_key, ip=random_ip(rng))
                for _ in range(1024)
            ] * (args.max_requests // 1024 + 1)
            print("bare:  warm-up ...", flush=True)
            load(
                runner,
                "warm-up",
                bare,
                bare_requests,
                clients=args.clients,
                seconds=args.warmup,
                expect=200,
            )

            # 2. smsreg: database, API key, server (the bare server stays up, idle)
            env = smsreg_env(tmp, database.url)
            if args.outbox == "worker":
                env["SMSREG_OUTBOX_DISPATCH"] = "external"
            smsreg_cli(env, "migrate")
            key = smsreg_cli(env, "api-keys", "create", "--name", "bench").strip().splitlines()[-1]
            if not key.startswith("smsreg_sk_"):
                raise RuntimeError(f"unexpected api-keys output: {key!r}")
            app = Server(
                "smsreg",
                "app.main:create_app",
                env=env,
                log=tmp / "smsreg.log",
                extra=SMSREG_FLAGS,
                profile=args.profile,
            )
            servers.append(app)
            app.wait_ready()
            if args.outbox == "worker":
                worker = subprocess.Popen(
                    [PYTHON, "-c", "from app.cli import main; main()", "worker"],
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=(tmp / "worker.log").open("wb"),
                    stderr=subprocess.STDOUT,
                )
                workers.append(worker)
            outbox = Outbox(tmp / "outbox.jsonl")
            floor: Server | None = None
            floor_requests: dict[str, list[bytes]] = {}
            if args.floor:
                # smsreg plus the floor routes, on the same database; it sends no SMS.
                floor = Server(
                    "floor",
                    "floor_app:create_app",
                    env={**env, "SMSREG_OUTBOX_DISPATCH": "external"},
                    log=tmp / "floor.log",
                    extra=[*SMSREG_FLAGS, "--app-dir", str(BENCH)],
                )
                servers.append(floor)
                floor.wait_ready()
                check_body = {"code": "123456"}
                paths = {
                    "start": lambda i: ("/bench/floor/start", payload),
                    "check": lambda i: (f"/bench/floor/ver_{i:06d}/check", check_body),
                }
                for name in FLOORS:
                    floor_requests[name] = []
                    for i in range(1024):
                        path, body = paths[name](i)
                        request = encode_post(path, floor.port, body, key=key, ip=random_ip(rng))
                        floor_requests[name].append(request)
                    floor_requests[name] *= args.max_requests // 1024 + 1
                    print(f"floor of {name}: warm-up ...", flush=True)
                    load(
                        runner,
                        f"warm-up floor {name}",
                        floor,
                        floor_requests[name],
                        clients=args.clients,
                        seconds=args.warmup,
                        expect=FLOORS[name],
                    )

            def start_requests(count: int) -> tuple[list[str], list[bytes]]:
                phones = unique_phones(rng, count)
                return phones, [
                    encode_post(
                        "/v1/verifications",
                        app.port,
                        {"phone": phone, "purpose": "coupon_usage"},
                        key=key,
                        ip=random_ip(rng),
                    )
                    for phone in phones
                ]

            def check_requests(pairs: Sequence[tuple[str, str]]) -> list[bytes]:
                return [
                    encode_post(
                        f"/v1/verifications/{vid}/check",
                        app.port,
                        {"code": outbox.codes[phone]},
                        key=key,
                        ip=random_ip(rng),
                    )
                    for vid, phone in pairs
                ]

            def codes_for(pairs: Sequence[tuple[str, str]]) -> None:
                missing = outbox.wait_for([phone for _, phone in pairs], timeout=60)
                if missing:
                    raise RuntimeError(f"{len(missing)} SMS never reached the outbox file")

            warm_phones, warm_requests = start_requests(args.max_requests // 4)
            phones, requests = start_requests(args.max_requests)
            print("start: warm-up ...", flush=True)
            warm = load(
                runner,
                "warm-up start",
                app,
                warm_requests,
                clients=args.clients,
                seconds=args.warmup,
                expect=201,
                keep_bodies=True,
            )
            warm_pairs = started_ids(warm, warm_phones)
            del warm_requests
            codes_for(warm_pairs)
            print("check: warm-up ...", flush=True)
            load(
                runner,
                "warm-up check",
                app,
                check_requests(warm_pairs),
                clients=args.clients,
                seconds=args.warmup,
                expect=200,
            )

            # 3. the measured rounds: bare, start, then check every verification that
            # round's start created, once, once its SMS is out
            rounds: dict[str, list[Phase]] = {"bare": [], "start": [], "check": []}
            sent = 0
            for number in range(1, args.rounds + 1):
                label = f"round {number}/{args.rounds}"
                print(f"{label}: bare, {'floors, ' if floor else ''}start, check ...", flush=True)
                rounds["bare"].append(
                    load(
                        runner,
                        "bare",
                        bare,
                        bare_requests,
                        clients=args.clients,
                        seconds=args.bare_seconds / args.rounds,
                        expect=200,
                    )
                )
                for name, requests_of_floor in floor_requests.items():
                    assert floor is not None  # noqa: S101 (requests only with a floor server)
                    rounds.setdefault(f"floor_{name}", []).append(
                        load(
                            runner,
                            f"floor_{name}",
                            floor,
                            requests_of_floor,
                            clients=args.clients,
                            seconds=args.floor_seconds / args.rounds,
                            expect=FLOORS[name],
                        )
                    )
                started = load(
                    runner,
                    "start",
                    app,
                    requests[sent:],
                    clients=args.clients,
                    seconds=args.start_seconds / args.rounds,
                    expect=201,
                    keep_bodies=True,
                )
                rounds["start"].append(started)
                pairs = started_ids(started, phones[sent:])
                sent += started.requests
                codes_for(pairs)
                checked = load(
                    runner,
                    "check",
                    app,
                    check_requests(pairs),
                    clients=args.clients,
                    seconds=args.check_seconds / args.rounds,
                    expect=200,
                )
                rounds["check"].append(checked)
                if checked.requests < len(pairs):
                    print(
                        f"note: {label}: check hit its bound after "
                        f"{checked.requests} of {len(pairs)} verifications"
                    )
            phases["bare"] = merge("bare FastAPI POST /echo", rounds["bare"])
            phases["start"] = merge("smsreg POST /v1/verifications", rounds["start"])
            phases["check"] = merge("smsreg POST /v1/verifications/{id}/check", rounds["check"])
            if floor is not None:
                for name, path in (("start", "start"), ("check", "{id}/check")):
                    phases[f"floor_{name}"] = merge(
                        f"floor of {name} POST /bench/floor/{path}", rounds[f"floor_{name}"]
                    )
                floor.stop()
                servers.remove(floor)
            del requests
            app.stop()
            servers.remove(app)
            bare.stop()
            servers.remove(bare)
        if args.pgbench:
            # 4. the server's own figure, with the smsreg servers stopped
            pgbench = databases.run_pgbench(
                databases.PostgresServer(args.postgres_url),
                pgbench_bin,
                scale=args.pgbench_scale,
                clients=args.clients,
                seconds=args.pgbench_seconds,
            )
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        for server in servers:
            server.stop()
        for worker in workers:
            worker.send_signal(signal.SIGINT)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        if database is not None:
            leftover = not database.close(keep=args.keep)

    assert database is not None
    result = report(phases, args, database.info(), pgbench)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults written to {args.json}")
    if result["errors"] or leftover or (pgbench is not None and "error" in pgbench):
        return 1
    if args.strict and not all(target["passed"] for target in result["targets"]):
        return 3
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # servers stopped and bench database dropped by then
        print("interrupted", file=sys.stderr)
        sys.exit(130)
