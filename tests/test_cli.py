"""The smsreg command: migrations, API keys and the checks at start, on a real database."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import typer
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from app.cli import cli
from app.core import cli_support
from app.core.migrations import alembic_config, upgrade
from app.keys.cli import startup_check
from app.main import create_app
from app.models import TABLES
from tests.conftest import TEST_KEYS, make_settings
from tests.fixtures.database import POSTGRES_URL, database_and_bare_role, postgres_available
from tests.fixtures.live import smsreg_env
from tests.sms.fake_twilio import unused_port

runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SMSREG_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("SMSREG_STATE_DIR", str(tmp_path / "state"))
    for family, key in TEST_KEYS.items():
        monkeypatch.setenv(f"SMSREG_{family.upper()}_KEYS", f'{{"t1": "{key}"}}')
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ["staff", "list"],
        ["api-keys", "list"],
        ["ledger", "export", "--output", "out.jsonl"],
        ["migrate"],  # it would make the folder, and every command after it would pass
    ],
)
def test_a_command_run_outside_the_checkout_makes_no_installation_of_its_own(
    tmp_path, monkeypatch, args
):
    """In development a command reads ./.smsreg: run elsewhere, it would make a second,
    empty installation there with keys of its own, and act on that."""
    monkeypatch.chdir(tmp_path)
    for name in ("SMSREG_STATE_DIR", "SMSREG_DATABASE_URL", "SMSREG_ENV_FILE"):
        monkeypatch.delenv(name, raising=False)
    refused = runner.invoke(cli, args)
    assert refused.exit_code == 2, refused.output
    assert "no development state in" in refused.output
    assert list(tmp_path.iterdir()) == []


def test_a_state_folder_named_from_elsewhere_holds_the_database_too(tmp_path, monkeypatch):
    """SMSREG_STATE_DIR names the installation: its database is the SQLite file in it,
    not a new one in ./.smsreg of wherever the command runs."""
    state = tmp_path / "checkout" / ".smsreg"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("SMSREG_DATABASE_URL", raising=False)
    monkeypatch.setenv("SMSREG_STATE_DIR", str(state))
    for family, key in TEST_KEYS.items():
        monkeypatch.setenv(f"SMSREG_{family.upper()}_KEYS", f'{{"t1": "{key}"}}')
    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    made = runner.invoke(cli, ["api-keys", "create", "--name", "from-elsewhere"])
    assert made.exit_code == 0, made.output
    assert (state / "smsreg.db").is_file()
    assert list(elsewhere.iterdir()) == []


def test_outside_development_the_database_stays_where_it_was(tmp_path, monkeypatch):
    """An installation on SQLite with a state folder of its own keeps its database file
    across the upgrade that put development's into the state folder."""
    from app.core.cli_support import database_url

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMSREG_DATABASE_URL", raising=False)
    monkeypatch.setenv("SMSREG_ENVIRONMENT", "production")
    monkeypatch.setenv("SMSREG_STATE_DIR", str(tmp_path / "state"))
    assert database_url() == "sqlite:///.smsreg/smsreg.db"


def test_keys_create_list_revoke(env):
    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    created = runner.invoke(cli, ["api-keys", "create", "--name", "coupon-frontend"])
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    assert token.startswith("smsreg_sk_")
    key_id = created.output.split()[1]

    listed = runner.invoke(cli, ["api-keys", "list"])
    assert key_id in listed.output and "active" in listed.output
    assert token not in listed.output, "a key is shown once, never listed"

    assert runner.invoke(cli, ["api-keys", "revoke", key_id]).exit_code == 0
    assert "revoked" in runner.invoke(cli, ["api-keys", "list"]).output
    again = runner.invoke(cli, ["api-keys", "revoke", key_id])
    assert again.exit_code == 1 and "was revoked at" in again.output


@pytest.mark.parametrize(
    "args",
    [
        ["--name", ""],
        ["--name", "x", "--scope", "admin:all"],
        ["--name", "x", "--expires-days", "0"],
    ],
)
def test_bad_key_requests_are_refused(env, args):
    runner.invoke(cli, ["migrate"])
    result = runner.invoke(cli, ["api-keys", "create", *args])
    assert result.exit_code == 1
    assert "refused" in result.output
    assert "smsreg_sk_" not in runner.invoke(cli, ["api-keys", "list"]).output


def test_production_without_secrets_refuses_to_start(monkeypatch, tmp_path):
    monkeypatch.setenv("SMSREG_ENVIRONMENT", "production")
    monkeypatch.setenv("SMSREG_SMS_SENDER", "twilio")
    monkeypatch.setenv("SMSREG_DATABASE_URL", f"sqlite:///{tmp_path}/p.db")
    for command in (["serve", "--no-migrate"], ["worker", "--once"], ["api-keys", "list"]):
        result = runner.invoke(cli, command)
        assert result.exit_code == 2, command
        assert "configuration error" in result.output


def test_migrate_needs_the_database_url_alone(monkeypatch, tmp_path):
    """The migration job holds the owner's credentials, not the service's secrets."""
    monkeypatch.setenv("SMSREG_ENVIRONMENT", "production")
    monkeypatch.setenv("SMSREG_SMS_SENDER", "twilio")
    monkeypatch.setenv("SMSREG_DATABASE_URL", f"sqlite:///{tmp_path}/p.db")
    result = runner.invoke(cli, ["migrate"])
    assert result.exit_code == 0, result.output


def test_migrate_on_a_newer_releases_database_says_so(monkeypatch, tmp_path):
    """A revision this release does not know: one line naming it, not Alembic's "can't
    locate revision" behind an unexpected CommandError."""
    database = f"sqlite:///{tmp_path}/newer.db"
    upgrade(database)
    engine = sa.create_engine(database)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    engine.dispose()
    monkeypatch.setenv("SMSREG_DATABASE_URL", database)
    result = runner.invoke(cli, ["migrate"])
    assert result.exit_code == 2, result.output
    assert "revision ffffffffffff, which this release does not know" in result.output
    assert "newer release" in result.output


def test_openapi_command_prints_yaml():
    result = runner.invoke(cli, ["openapi"])
    assert result.exit_code == 0
    assert result.output.startswith("openapi:")


def test_keys_new_prints_a_usable_key_ring(monkeypatch):
    import json

    from app.core.config import Settings

    value = runner.invoke(cli, ["keys", "new", "--key-id", "2026a"]).output.strip()
    ring = json.loads(value)
    monkeypatch.setenv("SMSREG_PHONE_KEYS", value)
    assert Settings(_env_file=None).key_ring("phone")[0] == "2026a" == next(iter(ring))


def test_api_keys_create_help_lists_every_scope():
    import re

    from app.clients.scopes import Scope

    result = runner.invoke(cli, ["api-keys", "create", "--help"])
    assert result.exit_code == 0
    text = re.sub(r"[\s│]+", " ", result.output)  # rich may wrap the option's help
    for scope in Scope:
        assert scope.value in text


def test_the_readme_gives_the_frontend_key_every_scope_and_says_what_the_dev_key_has():
    import re
    from pathlib import Path

    from app.clients.scopes import DEFAULT_SCOPES, Scope

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    command = re.search(r"smsreg api-keys create --name coupon-frontend(.*?)```", readme, re.S)
    assert command is not None
    assert set(re.findall(r"--scope (\S+)", command.group(1))) == {s.value for s in Scope}
    said = re.search(r"The development key has (?:one scope|the scopes?),? (.*?)\.", readme)
    assert said is not None
    assert set(re.findall(r"`([a-z]+:[a-z]+)`", said.group(1))) == {s.value for s in DEFAULT_SCOPES}


@pytest.mark.slow  # starts `smsreg` processes
@pytest.mark.parametrize("command", [["serve", "--no-migrate"], ["worker", "--once"]])
def test_a_database_not_migrated_for_this_release_is_refused_at_start(command, tmp_path):
    """Never migrated, or at an older revision: `serve` and `worker` exit 2 and say to run
    `smsreg migrate`, rather than start and fail every request."""
    database = f"sqlite:///{tmp_path}/old.db"
    smsreg = str(Path(sys.executable).parent / "smsreg")
    env = smsreg_env(database, tmp_path / "state", port=unused_port())
    for revision in (None, _older_revision()):
        if revision is not None:
            upgrade(database, revision)
        try:
            started = subprocess.run(
                [smsreg, *command], env=env, capture_output=True, text=True, timeout=60
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"`smsreg {' '.join(command)}` ran on a database at {revision}")
        assert started.returncode == 2, started.stderr
        assert "run `smsreg migrate` first" in started.stderr
    upgrade(database)
    assert (
        "smsreg migrate"
        not in subprocess.run(
            [smsreg, "worker", "--once"], env=env, capture_output=True, text=True, timeout=60
        ).stderr
    )


def _older_revision() -> str:
    """The revision before this release's head."""
    script = ScriptDirectory.from_config(alembic_config(""))
    (head,) = script.get_heads()
    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str)
    return previous


async def test_the_service_is_not_ready_on_a_database_behind_its_release(tmp_path):
    """A load balancer sends nothing to a process whose database is not migrated for it."""
    database = f"sqlite:///{tmp_path}/ready.db"
    app = create_app(make_settings(database, tmp_path))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            for revision in (None, _older_revision(), "head"):
                if revision is not None:
                    upgrade(database, revision)
                answer = await http.get("/readyz")
                if revision == "head":
                    assert answer.status_code == 200, answer.text
                else:
                    assert answer.status_code == 503
                    assert answer.headers["content-type"] == "application/problem+json"
    finally:
        await app.state.db.dispose()


def test_a_database_that_does_not_answer_at_start_is_waited_for_then_refused(tmp_path, capsys):
    """A service that started while its database was away skipped the schema and key
    checks for good, and a ring without a key in use registered a number twice: it is
    never served unchecked."""
    port = unused_port()  # nothing listens there
    settings = make_settings(f"postgresql+psycopg://postgres@127.0.0.1:{port}/x", tmp_path)
    with pytest.raises(typer.Exit) as stopped:
        cli_support.require_migrated(settings, tables=TABLES, wait_seconds=1)
    assert stopped.value.exit_code == 2
    said = capsys.readouterr().err
    assert "waiting for the database to answer" in said
    assert "did not answer within 1 s" in said


def test_a_database_away_between_the_start_checks_is_waited_for(database_url, settings, capsys):
    """The schema's check waited for a database that did not answer, the key check right
    after it did not: a failover or a cut connection between the two stopped `serve` or
    `worker` with "configuration error" (exit 2), and a worker started beside a database
    that was restarting never ran."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL database closed to connections for a moment")
    url = sa.engine.make_url(database_url)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def connections(allowed: bool) -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS {allowed}')

    connections(False)
    reopened = threading.Timer(1.5, connections, args=(True,))
    reopened.start()
    try:
        startup_check(settings)  # does not raise
    finally:
        reopened.join()
        connections(True)
        admin.dispose()
    assert "waiting for the database to answer" in capsys.readouterr().err


def test_migrate_as_a_role_that_may_not_create_tables_says_to_use_the_owner(monkeypatch):
    """Not the grants of the service's role (there are no tables yet): the wrong role."""
    if not postgres_available():
        pytest.skip("PostgreSQL does not answer at " + POSTGRES_URL)
    with database_and_bare_role("smsreg_test") as (url, role):
        owner = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with owner.connect() as conn:
            conn.exec_driver_sql(f'REVOKE CREATE ON SCHEMA public FROM "{role}", PUBLIC')
        owner.dispose()
        as_role = url.set(username=role).render_as_string(hide_password=False)
        monkeypatch.setenv("SMSREG_DATABASE_URL", as_role)
        result = runner.invoke(cli, ["migrate"])
        assert result.exit_code == 2, result.output
        assert "run `smsreg migrate` as the role that owns smsreg's tables" in result.output
