"""`smsreg staff`: bootstrap the first admin on a real database, list, disable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from app.cli import cli
from tests.conftest import TEST_KEYS
from tests.fixtures.live import smsreg_env
from tests.staff.helpers import CHEAP_HASHING

runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SMSREG_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("SMSREG_STATE_DIR", str(tmp_path / "state"))
    for family, key in TEST_KEYS.items():
        monkeypatch.setenv(f"SMSREG_{family.upper()}_KEYS", f'{{"t1": "{key}"}}')
    for name, value in CHEAP_HASHING.items():
        monkeypatch.setenv(f"SMSREG_{name.upper()}", str(value))
    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    return tmp_path


def table(tmp_path, sql: str) -> list[tuple]:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/cli.db")
    with engine.connect() as conn:
        found = [tuple(row) for row in conn.execute(sa.text(sql))]
    engine.dispose()
    return found


def execute(tmp_path, sql: str) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/cli.db")
    with engine.begin() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


CREATE = ["staff", "create", "--username", "root", "--role", "admin", "--display-name", "Root"]


def test_bootstrap_the_first_admin_from_stdin(env):
    made = runner.invoke(cli, [*CREATE, "--password-stdin"], input="a long enough passphrase\n")
    assert made.exit_code == 0, made.output
    assert "root" in made.output and "admin" in made.output
    assert "passphrase" not in made.output
    (row,) = table(env, "SELECT username, role, password_hash, created_by FROM staff_accounts")
    assert row[0] == "root" and row[1] == "admin" and row[3] == "cli"
    assert row[2].startswith("$argon2id$") and "passphrase" not in row[2]
    assert table(env, "SELECT change, new_role, actor FROM staff_permission_history") == [
        ("grant", "admin", "cli")
    ]
    assert table(env, "SELECT tag FROM audit_events") == [("staff:account:created",)]

    listed = runner.invoke(cli, ["staff", "list"])
    assert listed.exit_code == 0 and "root\tadmin\tRoot\tactive" in listed.output
    assert "argon2" not in listed.output


def test_an_invited_account_is_listed_as_invited(env):
    """Not enrolled yet, it cannot log in: "active" said otherwise."""
    made = runner.invoke(cli, [*CREATE, "--password-stdin"], input="a long enough passphrase\n")
    assert made.exit_code == 0, made.output
    engine = sa.create_engine(f"sqlite:///{env}/cli.db")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE staff_accounts SET activation_pending = 1"))
    engine.dispose()
    assert "root\tadmin\tRoot\tinvited" in runner.invoke(cli, ["staff", "list"]).output


def test_prompted_password(env):
    prompted = runner.invoke(
        cli, CREATE, input="a long enough passphrase\na long enough passphrase\n"
    )
    assert prompted.exit_code == 0, prompted.output
    assert "a long enough passphrase" not in prompted.output


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        ([], "too short\n", "password: must be at least 12 characters"),
        (["--role", "privacy_officer"], "a long enough passphrase\n", "invite them"),
        (["--username", "x"], "a long enough passphrase\n", "username: must be 3 to 64"),
    ],
)
def test_refusals_write_nothing(env, args, stdin, message):
    command = [*CREATE, "--password-stdin"]
    for i in range(0, len(args), 2):
        command[command.index(args[i]) + 1] = args[i + 1]
    refused = runner.invoke(cli, command, input=stdin)
    assert refused.exit_code == 1
    assert message in refused.output
    assert table(env, "SELECT count(*) FROM staff_accounts") == [(0,)]


def test_only_the_first_admin_then_break_glass_that_expires(env, caplog):
    pw = "a long enough pass\n"
    assert runner.invoke(cli, [*CREATE, "--password-stdin"], input=pw).exit_code == 0
    again = [*CREATE[:3], "second", *CREATE[4:], "--password-stdin"]
    refused = runner.invoke(cli, again, input=pw)
    assert refused.exit_code == 1 and "an admin exists" in refused.output
    other = ["staff", "create", "--username", "ops", "--role", "operator", "--display-name", "Ops"]
    assert runner.invoke(cli, [*other, "--password-stdin"], input=pw).exit_code == 1
    assert table(env, "SELECT username FROM staff_accounts") == [("root",)]

    glass = runner.invoke(cli, [*again, "--break-glass"], input=pw)
    assert glass.exit_code == 0, glass.output
    assert "break-glass: this account ends at" in glass.output
    warned = [r for r in caplog.records if r.name == "smsreg.staff"]
    assert [(r.levelname, r.getMessage()) for r in warned] == [
        ("WARNING", "break-glass admin created on the command line")
    ]
    (row,) = table(
        env, "SELECT id, created_at, expires_at FROM staff_accounts WHERE username = 'second'"
    )
    assert row[1] is not None
    assert table(
        env, "SELECT change, new_role, actor FROM staff_permission_history ORDER BY id"
    ) == [("grant", "admin", "cli"), ("break_glass", "admin", "cli")]
    assert ("staff:account:break_glass",) in table(env, "SELECT tag FROM audit_events")
    assert (
        "second\tadmin\tRoot\tactive (break-glass until 20"
        in runner.invoke(cli, ["staff", "list"]).output
    )
    # Past its end it can no longer sign in, and is not listed as active.
    execute(env, "UPDATE staff_accounts SET expires_at = created_at WHERE username = 'second'")
    assert (
        "second\tadmin\tRoot\tended (break-glass until 20"
        in runner.invoke(cli, ["staff", "list"]).output
    )

    (root_id,) = table(env, "SELECT id FROM staff_accounts WHERE username = 'root'")[0]
    # The break-glass admin ends by itself: it never counts as the admin that remains.
    last = runner.invoke(cli, ["staff", "disable", root_id])
    assert last.exit_code == 1 and "last active admin" in last.output
    assert runner.invoke(cli, ["staff", "disable", row[0]]).exit_code == 0
    assert runner.invoke(cli, ["staff", "disable", "stf_nobody"]).exit_code == 1
    assert (
        "second\tadmin\tRoot\tdisabled (break-glass until"
        in runner.invoke(cli, ["staff", "list"]).output
    )


def test_a_commands_warning_is_a_json_log_line(env):
    """The break-glass warning was plain text on stderr, outside the redacting formatter."""
    smsreg = str(Path(sys.executable).parent / "smsreg")
    environ = smsreg_env(f"sqlite:///{env}/cli.db", env / "state", **CHEAP_HASHING)
    made = [smsreg, *CREATE, "--password-stdin"]
    pw = "a long enough passphrase\n"
    assert subprocess.run(made, env=environ, input=pw, capture_output=True, text=True,
                          timeout=60).returncode == 0  # fmt: skip
    glass = [smsreg, *CREATE[:3], "second", *CREATE[4:], "--password-stdin", "--break-glass"]
    done = subprocess.run(glass, env=environ, input=pw, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [line] = [json.loads(line) for line in done.stderr.splitlines()]
    assert (line["level"], line["message"]) == (
        "WARNING",
        "break-glass admin created on the command line",
    )
