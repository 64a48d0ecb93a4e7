"""The smsreg command: migrations and API keys on a real database."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app.cli import cli
from tests.conftest import TEST_KEYS

runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SMSREG_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("SMSREG_STATE_DIR", str(tmp_path / "state"))
    for family, key in TEST_KEYS.items():
        monkeypatch.setenv(f"SMSREG_{family.upper()}_KEYS", f'{{"t1": "{key}"}}')
    return tmp_path


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
