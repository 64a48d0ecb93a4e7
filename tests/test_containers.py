"""The container stack as files (CI has no Docker; `make docker-smoke` runs it for real):
every job compose and the scheduler call is a real `smsreg` command, the roles and
restart policies are as docs/containers.md says, and the scheduler's loop runs its jobs
against a database and stops at once on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import typer
import yaml
from typer.testing import CliRunner

from app.cli import cli
from app.clients import service as clients
from app.core import cli_support
from app.core.config import ConfigError, Settings
from app.core.migrations import role_rights
from app.main import create_app
from app.models import TABLES
from app.retention import service as retention
from tests.conftest import TEST_KEYS, TEST_LEDGER_SEED, make_settings
from tests.fixtures.database import throwaway_postgres_database
from tests.fixtures.live import outside_environ, smsreg_env
from tests.sms.fake_twilio import unused_port

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
SCHEDULER = DOCKER / "scheduler.sh"


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def scheduled_commands() -> list[list[str]]:
    """The `smsreg` commands the scheduler runs (`run purge`, `run credentials due`, ...)."""
    lines = re.findall(r"^\s*run (.+)$", SCHEDULER.read_text(), flags=re.MULTILINE)
    return [line.split() for line in lines]


def test_every_job_compose_and_the_scheduler_run_is_a_real_command():
    services = compose()["services"]
    commands = [services[name]["command"] for name in ("migrate", "worker", "ledger-owner")]
    commands += [["smsreg", *command] for command in scheduled_commands()]
    assert {" ".join(c[1:]) for c in commands} >= {
        "migrate",
        "worker",
        "purge",
        "credentials due",
        "credentials rotate --due",
        "ledger checkpoint",
        "ledger purge",
    }
    runner = CliRunner()
    for command in commands:
        assert command[0] == "smsreg"
        result = runner.invoke(cli, [*command[1:], "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_the_stack_has_its_jobs_roles_and_restart_policies():
    services = compose()["services"]
    assert "redis" not in services
    assert services["migrate"]["restart"] == "no"
    assert services["db-grants"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    for name in ("smsreg", "worker", "scheduler"):
        service = services[name]
        assert service["restart"] == "unless-stopped", name
        assert service["depends_on"]["db-grants"]["condition"] == "service_completed_successfully"
        url = service["environment"]["SMSREG_DATABASE_URL"]
        assert url.startswith("postgresql://smsreg_app:"), name  # the runtime role, not the owner
    for owner_job in ("migrate", "ledger-owner"):
        url = services[owner_job]["environment"]["SMSREG_DATABASE_URL"]
        assert url.startswith("postgresql://smsreg_owner:"), owner_job
    # The ledger's purge signs an anchor checkpoint: it has the signing key, and `up`
    # never starts it.
    owner = services["ledger-owner"]
    assert "SMSREG_LEDGER_SIGNING_KEYS" in owner["environment"]
    assert owner["profiles"] == ["owner"] and owner["restart"] == "no"
    assert services["worker"]["environment"]["SMSREG_OUTBOX_DISPATCH"] == "external"
    assert services["scheduler"]["command"] == ["/usr/local/lib/smsreg/scheduler.sh"]


def test_the_image_runs_unprivileged_and_checks_health_on_the_configured_port():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)$", dockerfile, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "healthcheck.py" in dockerfile
    assert "SMSREG_PORT" in (DOCKER / "healthcheck.py").read_text()
    ignored = (ROOT / ".dockerignore").read_text()
    assert ".venv" in ignored or "*" in ignored.splitlines()


def _shipped() -> dict[str, str]:
    """docker/env.example's settings as shipped (block (a), Twilio in production)."""
    return dict(
        line.split("=", 1)
        for line in (DOCKER / "env.example").read_text().splitlines()
        if re.match(r"^[A-Z_]+=", line)
    )


def _env_file() -> dict[str, str]:
    """docker/env.example as an operator fills it in: every secret in place of its
    placeholder."""
    values = _shipped()
    for family, key in TEST_KEYS.items():
        values[f"SMSREG_{family.upper()}_KEYS"] = json.dumps({"k1": key})
    values["SMSREG_LEDGER_SIGNING_KEYS"] = json.dumps({"l1": TEST_LEDGER_SEED})
    for password in ("POSTGRES_PASSWORD", "DB_OWNER_PASSWORD", "DB_APP_PASSWORD"):
        values[password] = "0123456789abcdef"
    values["SMSREG_TWILIO_AUTH_TOKEN"] = "0123456789abcdef0123456789abcdef"
    values["SMSREG_METRICS_TOKEN"] = "3f9c1a7e5b2d4c6e8a0b1d3f5e7c9a2b4d6f8e0a1c3b5d7f"
    return values


def _interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error}."""

    def one(found: re.Match[str]) -> str:
        name, operator, rest = found["name"], found["op"], found["rest"] or ""
        given = values.get(name, "")
        if operator == ":?":
            assert given, f"compose would refuse: {rest}"
        return given or (rest if operator == ":-" else "")

    return re.sub(r"\$\{(?P<name>[A-Z_]+)(?:(?P<op>:-|:\?)(?P<rest>[^}]*))?\}", one, text)


@pytest.mark.parametrize("service", ["smsreg", "worker", "scheduler", "ledger-owner"])
def test_the_production_env_file_starts_every_app_container(service, monkeypatch):
    """What compose hands each container from a filled-in env.example is a production
    configuration the app accepts: nothing production requires is left out."""
    values = _env_file()
    environment = compose()["services"][service]["environment"]
    for name in [n for n in os.environ if n.startswith("SMSREG_")]:
        monkeypatch.delenv(name)
    for name, raw in environment.items():
        value = _interpolate(str(raw), values)
        if value:  # compose passes "" for an unset optional one: the app reads it as unset
            monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    assert settings.environment == "production" and settings.sms_sender == "twilio"
    create_app(settings)  # every check a process makes at start: keys, carrier, ledger key


def test_the_production_env_file_as_shipped_is_refused(monkeypatch):
    """docker/env.example's placeholders never start a production container."""
    for name in [n for n in os.environ if n.startswith("SMSREG_")]:
        monkeypatch.delenv(name)
    filled = _env_file()
    for name, value in _shipped().items():
        # Only the placeholders stay as shipped: every key ring is filled in.
        monkeypatch.setenv(name, value if "replace-with" in value else filled[name])
    with pytest.raises(ConfigError, match="placeholder|METRICS_TOKEN"):
        Settings(_env_file=None)


@pytest.mark.slow
def test_the_scheduler_runs_each_job_then_stops_on_sigterm(tmp_path):
    env = smsreg_env(f"sqlite:///{tmp_path}/scheduled.db", tmp_path / "state")
    # The image's PATH has the installed `smsreg`; here, this environment's.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    migrated = subprocess.run(
        [str(Path(sys.executable).parent / "smsreg"), "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr
    log = tmp_path / "scheduler.log"
    with log.open("w") as out:
        scheduler = subprocess.Popen(
            ["/bin/sh", str(SCHEDULER)], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            expected = [f"smsreg {' '.join(c)} done" for c in scheduled_commands()]
            deadline = time.monotonic() + 120
            while not all(line in log.read_text() for line in expected):
                assert "FAILED" not in log.read_text(), log.read_text()
                assert scheduler.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            stopping = time.monotonic()
            scheduler.send_signal(signal.SIGTERM)
            assert scheduler.wait(timeout=10) == 0
            assert time.monotonic() - stopping < 5  # not after its 30-second nap
        finally:
            if scheduler.poll() is None:
                scheduler.kill()
                scheduler.wait()
    assert "scheduler: stopping" in log.read_text()


@pytest.mark.slow
def test_the_health_check_asks_the_port_the_service_was_given(live_server):
    """docker/healthcheck.py, as the image runs it, against a real `smsreg serve`."""
    port = live_server.url.rsplit(":", 1)[1]

    def check(**settings: str) -> int:
        env = outside_environ()
        env.update(settings)
        script = str(DOCKER / "healthcheck.py")
        return subprocess.run([sys.executable, script], env=env, timeout=30).returncode

    assert check(SMSREG_PORT=port) == 0
    assert check(SMSREG_PORT=port, SMSREG_HOST="0.0.0.0") == 0  # noqa: S104 (bound everywhere: asks loopback)
    assert check(SMSREG_PORT=str(unused_port())) == 1


def test_the_containers_that_sign_checkpoints_append_them_to_a_witness_volume():
    """The ledger's checkpoints also go to a witness outside the database: the service
    and the scheduler (both sign them) write to a volume of its own, which the image
    creates for its unprivileged user."""
    stack = compose()
    for name in ("smsreg", "scheduler", "ledger-owner"):
        service = stack["services"][name]
        witness = service["environment"]["SMSREG_LEDGER_WITNESS"]
        path = witness.split(":-", 1)[1].rstrip("}")
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service.get("volumes", [])}
        folder = str(Path(path).parent)
        assert mounts.get(folder) == "witness", (name, mounts)
    assert "witness" in stack["volumes"]
    assert "/var/lib/smsreg/witness" in (DOCKER / "Dockerfile").read_text()


@contextlib.contextmanager
def granted_role(url: str) -> Iterator[sa.URL]:
    """A login role given docker/postgres/grants.sql on the database at ``url``, applied
    with psql as the db-grants job applies it; its URL. Dropped on exit."""
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed")
    owner = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    role = f"smsreg_app_{secrets.token_hex(4)}"
    try:
        with owner.connect() as conn:
            conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
        grants = (DOCKER / "postgres" / "grants.sql").read_text().replace("smsreg_app", role)
        libpq = sa.engine.make_url(url).set(drivername="postgresql")
        applied = subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1",
             "-d", libpq.render_as_string(hide_password=False)],
            input=grants, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr
        yield sa.engine.make_url(url).set(username=role)
    finally:
        with owner.connect() as conn:
            conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
            conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        owner.dispose()


def test_the_runtime_role_purges_but_never_rewrites_the_ledger(tmp_path):
    """docker/postgres/grants.sql, applied with psql as the db-grants job applies it: the
    role the service, worker and scheduler run as can run the whole purge, the access
    log's expired entries included, but cannot change or delete the disclosure ledger,
    nor rewrite the access log or delete an entry of it younger than its retention."""
    with throwaway_postgres_database() as url, granted_role(url) as as_role:
        owner = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with owner.connect() as conn:
            for age in ("800 days", "1 day"):
                conn.execute(
                    sa.text(
                        "INSERT INTO access_log (accessed_at, staff_id, staff_username, "
                        "staff_role, source_ip, action) VALUES (now() - CAST(:age AS "
                        "interval), 'stf_x', 'x', 'operator', '127.0.0.1', 'search')"
                    ),
                    {"age": age},
                )
        owner.dispose()
        app = create_app(make_settings(as_role.render_as_string(hide_password=False), tmp_path))

        async def purge() -> dict[str, int]:
            try:
                return (await retention.purge(app.state.db, app.state.ctx)).deleted
            finally:
                await app.state.db.dispose()

        assert asyncio.run(purge()).get("access_log") == 1
        runtime = sa.create_engine(as_role, isolation_level="AUTOCOMMIT")
        try:
            with runtime.connect() as conn:
                assert conn.execute(sa.text("SELECT count(*) FROM access_log")).scalar() == 1
                refused = {
                    "UPDATE ledger_entries SET seq = seq": "permission denied",
                    "DELETE FROM ledger_entries": "permission denied",
                    "DELETE FROM ledger_checkpoints": "permission denied",
                    "TRUNCATE access_log": "permission denied",
                    "UPDATE access_log SET reason = 'x'": "permission denied",
                    "DELETE FROM access_log": "append-only",
                }
                for statement, why in refused.items():
                    with pytest.raises(sa.exc.DBAPIError, match=why):
                        conn.exec_driver_sql(statement)
        finally:
            runtime.dispose()


def test_a_table_the_grants_missed_stops_the_start_and_readiness(tmp_path, capsys):
    """A role the grants were not applied to after a migration (one table short) passed
    every start check and /readyz, then answered 500 on each start of a verification."""
    with throwaway_postgres_database() as url, granted_role(url) as as_role:
        role_url = as_role.render_as_string(hide_password=False)
        settings = make_settings(role_url, tmp_path)
        # The grants give exactly what it asks.
        assert role_rights(role_url, TABLES).ungranted == []
        owner = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with owner.connect() as conn:
            # A table of the schema that is not this release's (a newer release's, not
            # granted yet while replicas are replaced, or the operator's own) is no
            # concern of this release's start or readiness.
            conn.exec_driver_sql("CREATE TABLE not_ours (id int)")
        cli_support.require_migrated(settings, tables=TABLES, wait_seconds=1)  # does not refuse
        with owner.connect() as conn:
            conn.exec_driver_sql(f'REVOKE ALL ON outbox_messages FROM "{as_role.username}"')
        owner.dispose()
        with pytest.raises(typer.Exit) as refused:
            cli_support.require_migrated(settings, tables=TABLES, wait_seconds=1)
        assert refused.value.exit_code == 2
        assert "lacks its rights on outbox_messages" in capsys.readouterr().err
        app = create_app(settings)

        async def ready_and_start() -> tuple[httpx.Response, httpx.Response]:
            transport = httpx.ASGITransport(app=app)
            try:
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                    ready = await http.get("/readyz")
                    async with app.state.db.transaction() as tx:
                        key = await clients.create(
                            tx, app.state.ctx, name="k", scopes=["verifications:write"],
                            created_by="test",
                        )  # fmt: skip
                    body = {"phone": "090-1234-5678", "purpose": "coupon_usage"}
                    auth = {"Authorization": f"Bearer {key.token}"}
                    return ready, await http.post("/v1/verifications", json=body, headers=auth)
            finally:
                await app.state.db.dispose()

        ready, started = asyncio.run(ready_and_start())
        assert ready.status_code == 503 and "outbox_messages" in ready.text
        assert started.status_code == 503, started.text  # not a 500: nothing was changed


def test_production_run_as_the_ledgers_owner_is_warned_of(tmp_path, capsys):
    """Production refused a short metrics token yet started silently as the tables'
    owner, the one role that can switch the ledger's append-only triggers off."""
    with throwaway_postgres_database() as url, granted_role(url) as as_role:
        for role_url, warned in (
            (url, True),
            (as_role.render_as_string(hide_password=False), False),
        ):
            settings = make_settings(role_url, tmp_path).model_copy(
                update={"environment": "production"}
            )
            cli_support.require_migrated(settings, tables=TABLES, wait_seconds=1)
            said = capsys.readouterr().err
            assert ("owns the ledger's tables" in said) is warned, said
