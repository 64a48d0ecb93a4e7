"""What an operator meets: clear configuration errors, migrations that are safe to run
twice at once and ship in the wheel, and metrics that add up across worker processes."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import TEST_KEYS
from tests.fixtures.database import POSTGRES_URL, database_and_bare_role, postgres_available
from tests.fixtures.live import outside_environ

# Each test runs `smsreg` in processes of its own: left out of `make test-fast`.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SMSREG = [sys.executable, "-c", "from app.cli import main; main()"]


def base_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = outside_environ()
    env["SMSREG_STATE_DIR"] = str(tmp_path / "state")
    env["SMSREG_DATABASE_URL"] = f"sqlite:///{tmp_path}/ops.db"
    for family, key in TEST_KEYS.items():
        env[f"SMSREG_{family.upper()}_KEYS"] = json.dumps({"t1": key})
    env.update({f"SMSREG_{name.upper()}": value for name, value in settings.items()})
    return env


def run(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMSREG, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"port": "abc"}, "SMSREG_PORT"),
        ({"environment": "production", "sms_sender": "console"}, "console SMS sender"),
        (
            {"environment": "production", "sms_sender": "twilio", "phone_keys": "{}"},
            "SMSREG_PHONE_KEYS",
        ),
        ({"sms_sender": "twilio", "twilio_account_sid": "nope"}, "SMSREG_TWILIO_"),
        # Not JSON: said as the variable, not as pydantic-settings' "field ... from
        # source EnvSettingsSource".
        ({"code_keys": "{k1:"}, "SMSREG_CODE_KEYS: not valid JSON"),
        ({"database_url": "mysql://x@y/z"}, "SMSREG_DATABASE_URL"),
        ({"trusted_proxies": "0.0.0.0/0"}, "SMSREG_TRUSTED_PROXIES: 0.0.0.0/0 is far wider"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(tmp_path, settings, names):
    result = run(["serve", "--no-migrate"], base_env(tmp_path, **settings))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("configuration error: "), lines
    assert names in lines[0]
    assert "Value error" not in lines[0] and "Source" not in lines[0]


@pytest.mark.parametrize(
    ("args", "database_url", "said"),
    [
        (["purge"], "postgresql://postgres@127.0.0.1:1/x", "the database cannot be reached"),
        (["migrate"], "postgresql://postgres@127.0.0.1:1/x", "the database cannot be reached"),
        (["api-keys", "list"], None, "run `smsreg migrate`"),  # never migrated
        (["ledger", "export", "--output", "/nonexistent/x.jsonl"], None, "No such file"),
    ],
)
def test_a_failing_command_says_why_in_one_line_and_exits_1(tmp_path, args, database_url, said):
    """Not a traceback of hundreds of lines: what an operator can act on."""
    env = base_env(tmp_path, **({"database_url": database_url} if database_url else {}))
    if args[0] == "ledger":
        assert run(["migrate"], env).returncode == 0
    result = run(args, env)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert said in lines[0]
    assert run(args, {**env, "SMSREG_TRACEBACK": "1"}).stderr.count("\n") > 5


def test_the_openapi_document_is_the_same_in_any_environment(tmp_path):
    result = run(["openapi"], base_env(tmp_path, **PRODUCTION))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "openapi.yaml").read_text()


def test_a_new_key_refuses_an_id_no_start_would_take(tmp_path):
    result = run(["keys", "new", "--key-id", "bad id!"], base_env(tmp_path))
    assert result.returncode == 2 and result.stdout == ""


# A production configuration that is complete but for what a test takes away.
PRODUCTION = {
    "environment": "production",
    "sms_sender": "twilio",
    "twilio_account_sid": "AC" + "0123456789abcdef" * 2,
    "twilio_auth_token": "production-auth-token-0123456789",
    "twilio_from_number": "+15005550006",
    "public_base_url": "https://sms.example.co.jp",
    "metrics_token": "scrape-token-0123456789abcdef",
}


@pytest.mark.parametrize("workers", [1, 3])
def test_a_missing_ledger_key_is_one_line_and_no_worker_is_started_again(tmp_path, workers):
    """With several workers too: the parent checks what a worker would, so a bad setting
    ends the command at once instead of a worker failing and being started again."""
    env = base_env(tmp_path, **PRODUCTION)
    started = time.monotonic()
    result = run(["serve", "--no-migrate", "--workers", str(workers)], env)
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - started < 60
    assert "Traceback" not in result.stderr and "Started server process" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "configuration error: SMSREG_LEDGER_SIGNING_KEYS is required outside development"
    ]


def test_the_worker_refuses_a_placeholder_key_in_one_line(tmp_path):
    """It said "unexpected ConfigError" without naming the setting, and a container
    runtime started it again for ever; serve named it."""
    assert run(["migrate"], base_env(tmp_path)).returncode == 0
    env = base_env(tmp_path, phone_keys=json.dumps({"t1": "replace-with-a-key"}))
    result = run(["worker", "--once"], env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("configuration error: SMSREG_PHONE_KEYS"), result.stderr


@pytest.mark.skipif(not postgres_available(), reason="needs PostgreSQL")
@pytest.mark.parametrize("command", [["worker", "--once"], ["serve", "--no-migrate"]])
def test_a_role_never_granted_the_tables_is_told_so_at_start(tmp_path, command):
    """Migrated by the owner but never granted (the grants step skipped): the service
    restarted with "unexpected ProgrammingError", the worker logged a traceback a second."""
    with database_and_bare_role("smsreg_grants") as (owner, role):
        migrated = run(["migrate"], base_env(tmp_path, database_url=owner.render_as_string(False)))
        assert migrated.returncode == 0, migrated.stderr
        bare = owner.set(username=role).render_as_string(False)
        result = run(command, base_env(tmp_path, database_url=bare))
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert "grant them after every migration" in result.stderr, result.stderr


@pytest.mark.skipif(not postgres_available(), reason="needs PostgreSQL")
@pytest.mark.parametrize(
    ("command", "code", "said"),
    [
        (["worker", "--once"], 2, "may not use the schema"),
        (["migrate"], 1, "may not use the schema"),
        (["keys", "status"], 1, "or the role was not granted them"),
    ],
)
def test_a_role_that_may_not_use_the_schema_is_not_told_to_migrate(tmp_path, command, code, said):
    """With USAGE on schema public revoked from PUBLIC (a common hardening) and the role
    never granted it, a migrated database read as never migrated: the worker said to run
    `smsreg migrate`, and `smsreg migrate` said "unexpected ProgrammingError"."""
    with database_and_bare_role("smsreg_schema") as (owner, role):
        migrated = run(["migrate"], base_env(tmp_path, database_url=owner.render_as_string(False)))
        assert migrated.returncode == 0, migrated.stderr
        hardened = sa.create_engine(owner, isolation_level="AUTOCOMMIT")
        with hardened.connect() as conn:
            conn.exec_driver_sql("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        hardened.dispose()
        bare = owner.set(username=role).render_as_string(False)
        result = run(command, base_env(tmp_path, database_url=bare))
        assert result.returncode == code and "Traceback" not in result.stderr, result.stderr
        assert said in result.stderr and "never migrated)" not in result.stderr, result.stderr


def test_the_worker_refuses_a_bad_carrier_setting_in_one_line(tmp_path):
    env = base_env(tmp_path, sms_sender="twilio", twilio_account_sid="nope")
    assert run(["migrate"], base_env(tmp_path)).returncode == 0
    result = run(["worker", "--once"], env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("configuration error: SMSREG_TWILIO_")


@pytest.mark.skipif(not postgres_available(), reason="needs PostgreSQL")
def test_two_migrations_at_once_on_an_empty_database_both_succeed(tmp_path):
    name = f"smsreg_migrate_{secrets.token_hex(4)}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(False)
    try:
        env = base_env(tmp_path, database_url=url)
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda _: run(["migrate"], env), range(2)))
        assert [r.returncode for r in results] == [0, 0], [r.stderr[-500:] for r in results]
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_an_installed_wheel_migrates_outside_the_repository(tmp_path):
    wheel_dir = tmp_path / "wheel"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    target = tmp_path / "site"
    (wheel,) = wheel_dir.glob("smsreg-*.whl")
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = base_env(tmp_path)
    # The installed copy only: the repository is neither the working directory nor on
    # the path, so its app/migrations cannot be what is found.
    env["PYTHONPATH"] = str(target)
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(target)!r}); from app.cli import main; main()",
            "migrate",
        ],
        env=env,
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    engine = sa.create_engine(f"sqlite:///{tmp_path}/ops.db")
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    assert {"verifications", "outbox_messages", "ledger_entries"} <= tables


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (our own loopback server)
        return answer.read().decode()


def test_metrics_and_logs_add_up_across_worker_processes(tmp_path):
    """Every worker process counts in the metrics and writes the JSON access lines."""
    port = _free_port()
    env = base_env(tmp_path, port=str(port), outbox_dispatch="external")
    assert run(["migrate"], env).returncode == 0
    log = tmp_path / "serve.log"
    with log.open("wb") as stderr:
        server = subprocess.Popen(
            [*SMSREG, "serve", "--workers", "2", "--no-migrate"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        for _ in range(11):  # twelve in all, spread over both processes
            _get(f"http://127.0.0.1:{port}/healthz")

        def healthz_count() -> float:
            scraped = _get(f"http://127.0.0.1:{port}/metrics")
            line = next(
                line
                for line in scraped.splitlines()
                if line.startswith("smsreg_http_requests_total")
                and 'route="/healthz"' in line
                and 'status="200"' in line
            )
            return float(line.rsplit(" ", 1)[1])

        # A request is counted once its answer has gone out: the last one's count may
        # land a moment after its answer, in the other process. Then every scrape, by
        # either process, adds up to all twelve.
        settled = time.monotonic() + 10
        while healthz_count() != 12.0 and time.monotonic() < settled:
            time.sleep(0.05)
        counts = {healthz_count() for _ in range(10)}
        assert counts == {12.0}, counts
    finally:
        server.terminate()
        server.wait(timeout=30)
    lines = [json.loads(line) for line in log.read_text().splitlines()]  # JSON, every one
    served = [line for line in lines if line["logger"] == "smsreg.access"]
    assert sum(line["route"] == "/healthz" for line in served) == 12, served
    # uvicorn's own lines from the workers (each one's "Started server process").
    assert sum("Started server process" in line["message"] for line in lines) >= 2


def test_a_separate_worker_serves_its_own_metrics_with_the_token(tmp_path):
    """Its SMS outcomes are counted in its own process: the service's /metrics never
    sees them when the worker runs apart (SMSREG_OUTBOX_DISPATCH=external)."""
    port = _free_port()
    token = "scrape-token-0123456789abcdef"
    env = base_env(tmp_path, metrics_token=token, outbox_dispatch="external")
    assert run(["migrate"], env).returncode == 0
    log = tmp_path / "worker.log"
    with log.open("wb") as stderr:
        worker = subprocess.Popen(
            [*SMSREG, "worker", "--metrics-port", str(port)],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"
    scrape = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(scrape, timeout=5) as answer:  # noqa: S310
                    scraped = answer.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert "# TYPE smsreg_sms_outcomes_total counter" in scraped
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(url)
        assert refused.value.code == 401
    finally:
        worker.terminate()
        assert worker.wait(timeout=30) == 0
    messages = [json.loads(line)["message"] for line in log.read_text().splitlines()]
    assert "outbox worker started" in messages and "outbox worker stopped" in messages


def test_a_worker_whose_metrics_port_is_taken_does_not_start(tmp_path):
    """uvicorn's thread died and the worker sent on, exit 0, with nothing to scrape."""
    env = base_env(tmp_path, outbox_dispatch="external")
    assert run(["migrate"], env).returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run(["worker", "--metrics-port", str(port)], env)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"--metrics-port {port}" in lines[0], lines


def test_a_service_whose_port_is_taken_says_which_in_one_line(tmp_path):
    """It was uvicorn's log line with the port masked as a code would be, and exit 3."""
    env = base_env(tmp_path)
    assert run(["migrate"], env).returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run(["serve", "--no-migrate", "--host", "127.0.0.1", "--port", str(port)], env)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"--port (SMSREG_PORT) {port} on 127.0.0.1" in lines[0], lines


def _post_start(port: int, key: str, phone: str, forwarded_for: str) -> int:
    request = urllib.request.Request(  # noqa: S310 (our own loopback server)
        f"http://127.0.0.1:{port}/v1/verifications",
        data=json.dumps({"phone": phone, "purpose": "coupon_usage"}).encode(),
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "X-Forwarded-For": forwarded_for,
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def test_the_served_service_does_not_believe_a_forged_forwarded_for_from_loopback(tmp_path):
    """Through uvicorn itself, whose own default trusts 127.0.0.1: the service turns
    that off, so two starts from one loopback peer are one address, whatever they claim."""
    port = _free_port()
    env = base_env(tmp_path, port=str(port), sends_per_ip_hour="1", outbox_dispatch="external")
    assert run(["migrate"], env).returncode == 0
    created = run(["api-keys", "create", "--name", "ops-test"], env)
    key = created.stdout.strip().splitlines()[-1]
    server = subprocess.Popen(
        [*SMSREG, "serve", "--no-migrate"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        first = _post_start(port, key, "090-1111-0001", "198.51.100.1")
        second = _post_start(port, key, "090-1111-0002", "198.51.100.2")
        assert (first, second) == (201, 429)
    finally:
        server.terminate()
        server.wait(timeout=30)
