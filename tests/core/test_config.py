"""Settings: every default number, and refusal to run production on missing or weak secrets."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import ConfigError, Settings
from tests.fixtures.live import outside_environ

FAMILIES = ("phone", "index", "code", "token")


def random_key(name: str) -> str:
    """A fixed key that looks random, as `smsreg keys new` makes them."""
    return base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()


GOOD = random_key("good")
KEYS = {f"{family}_keys": {"k1": random_key(family)} for family in FAMILIES}
TOKEN = "scrape-token-0123456789"


def test_defaults_are_the_design_numbers(monkeypatch):
    for name in list(os.environ):
        if name.startswith("SMSREG_"):
            monkeypatch.delenv(name)
    s = Settings(_env_file=None)
    assert (s.code_length, s.code_ttl_seconds, s.max_check_attempts) == (6, 600, 5)
    assert (s.resend_cooldown_seconds, s.sends_per_number_hour, s.sends_per_number_day) == (
        30,
        5,
        10,
    )
    assert (s.password_min_length, s.password_max_age_days, s.session_max_hours) == (12, 90, 12)
    assert (s.api_key_max_age_days, s.allowed_regions, s.environment) == (
        180,
        ["JP", "KR"],
        "development",
    )
    assert s.unverified_retention_hours == 24 and s.access_log_retention_days == 365


@pytest.mark.parametrize("seconds", [30, 90, 660])
def test_a_code_lives_whole_minutes(seconds):
    """The SMS says "valid for N minutes": 30 seconds was sent as "1 minute"."""
    with pytest.raises(ValueError):
        Settings(code_ttl_seconds=seconds, _env_file=None)


@pytest.mark.parametrize("length", [3, 11])
def test_code_length_is_bounded(length):
    with pytest.raises(ValueError):
        Settings(code_length=length, _env_file=None)


def test_production_refuses_missing_secrets():
    with pytest.raises(ConfigError, match="SMSREG_PHONE_KEYS is required"):
        Settings(environment="production", sms_sender="twilio", _env_file=None)


@pytest.mark.parametrize(
    "secret",
    [
        "changeme",
        "replace-with-a-random-key",
        base64.b64encode(b"short").decode(),
        "not base64!",
        base64.b64encode(bytes(32)).decode(),  # all zeros
        base64.b64encode(b"0123456789" * 4).decode(),  # 40 bytes, ten values
    ],
)
def test_production_refuses_weak_or_placeholder_secrets(secret):
    keys = {**KEYS, "code_keys": {"k1": secret}}
    with pytest.raises(ConfigError, match="SMSREG_CODE_KEYS"):
        Settings(
            environment="production", sms_sender="twilio", metrics_token=TOKEN, _env_file=None,
            **keys,
        )  # fmt: skip


def test_production_refuses_one_key_in_two_families():
    """A key shared by two families (the same key for numbers and their blind index) would
    tie what the design keeps apart: each family's keys are its own."""
    keys = {**KEYS, "token_keys": KEYS["index_keys"]}
    with pytest.raises(ConfigError, match="SMSREG_INDEX_KEYS and SMSREG_TOKEN_KEYS share a key"):
        Settings(
            environment="production", sms_sender="twilio", metrics_token=TOKEN, _env_file=None,
            **keys,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("seed", "said"),
    [
        (base64.b64encode(bytes(32)).decode(), "is not random"),  # all zeros
        (base64.b64encode(b"changeme" * 4).decode(), "is not random"),  # a word said again
        (KEYS["phone_keys"]["k1"], "is also a key of SMSREG_PHONE_KEYS"),
    ],
)
def test_production_refuses_a_guessable_or_shared_ledger_signing_seed(seed, said):
    """Whoever knows the seed signs checkpoints: a forged ledger would verify."""
    with pytest.raises(ConfigError, match=f"SMSREG_LEDGER_SIGNING_KEYS\\[l1\\] {said}"):
        Settings(
            environment="production", sms_sender="twilio", metrics_token=TOKEN, _env_file=None,
            ledger_signing_keys={"l1": seed}, **KEYS,
        )  # fmt: skip


@pytest.mark.parametrize(
    "token",
    [
        "x",
        "0123456789abcde",
        "replace-with-a-random-scrape-token",
        "changemechangemechangeme",  # a word said again: not random however long
        "secretsecretsecret",
        "abababababababababab",
    ],
)
def test_production_refuses_a_short_or_placeholder_metrics_token(token):
    # A placeholder is called one (it was told to be 16 characters long, and was 34).
    said = "is a placeholder" if token.startswith("replace-with") else "at least"
    with pytest.raises(ConfigError, match=f"SMSREG_METRICS_TOKEN .*{said}"):
        Settings(
            environment="production", sms_sender="twilio", metrics_token=token, _env_file=None,
            **KEYS,
        )  # fmt: skip


def test_production_refuses_a_placeholder_carrier_token():
    with pytest.raises(ConfigError, match="SMSREG_TWILIO_AUTH_TOKEN"):
        Settings(
            environment="production", sms_sender="twilio", metrics_token=TOKEN,
            twilio_auth_token="replace-with-the-account-auth-token", _env_file=None, **KEYS,
        )  # fmt: skip


def test_production_refuses_a_placeholder_secondary_carrier_token():
    with pytest.raises(ConfigError, match="SMSREG_TWILIO_SECONDARY_AUTH_TOKEN"):
        Settings(
            environment="production", sms_sender="twilio", metrics_token=TOKEN,
            twilio_auth_token="a1b2c3d4e5f60718293a4b5c6d7e8f90",
            twilio_secondary_auth_token="replace-with-the-secondary-token", _env_file=None,
            **KEYS,
        )  # fmt: skip


def test_a_secondary_carrier_token_needs_the_first():
    with pytest.raises(ConfigError, match="needs SMSREG_TWILIO_AUTH_TOKEN"):
        Settings(twilio_secondary_auth_token="a1b2c3d4e5f60718293a4b5c6d7e8f90", _env_file=None)


def test_production_refuses_the_console_sender():
    with pytest.raises(ConfigError, match="console"):
        Settings(environment="production", _env_file=None, **KEYS)


def test_production_with_real_secrets_starts():
    """Random keys, each family's own, and a long token: a configuration production takes."""
    s = Settings(
        environment="production",
        sms_sender="twilio",
        metrics_token=TOKEN,
        _env_file=None,
        **KEYS,
    )
    assert s.key_ring("phone")[0] == "k1"


def test_production_needs_a_metrics_token():
    with pytest.raises(ConfigError, match="SMSREG_METRICS_TOKEN"):
        Settings(environment="production", sms_sender="twilio", _env_file=None, **KEYS)


def test_production_refuses_plain_http_to_the_carrier():
    with pytest.raises(ConfigError, match="TWILIO_API_BASE_URL"):
        Settings(
            environment="production",
            sms_sender="twilio",
            metrics_token=TOKEN,
            twilio_api_base_url="http://127.0.0.1:9999",
            _env_file=None,
            **KEYS,
        )


def test_several_keys_need_an_active_id():
    keys = {**KEYS, "phone_keys": {"a": GOOD, "b": GOOD}}
    with pytest.raises(ConfigError, match="KEY_ID"):
        Settings(environment="production", sms_sender="twilio", _env_file=None, **keys)


def test_development_generates_secrets_once_owner_only(tmp_path):
    first = Settings(state_dir=tmp_path, _env_file=None).with_dev_secrets()
    path = tmp_path / "dev-secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = Settings(state_dir=tmp_path, _env_file=None).with_dev_secrets()
    assert first.key_ring("phone") == second.key_ring("phone")


def test_lists_from_the_environment(monkeypatch):
    monkeypatch.setenv("SMSREG_ALLOWED_REGIONS", "jp,kr")
    monkeypatch.setenv("SMSREG_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1")  # the widest: /8
    s = Settings(_env_file=None)
    assert s.allowed_regions == ["JP", "KR"]
    assert s.trusted_proxies == ["10.0.0.0/8", "192.168.1.1"]
    # A network with host bits is named as the network uvicorn can read.
    monkeypatch.setenv("SMSREG_TRUSTED_PROXIES", "10.0.0.1/8")
    assert Settings(_env_file=None).trusted_proxies == ["10.0.0.0/8"]


@pytest.mark.parametrize(
    "proxies",
    ["not-an-ip", "*", "0.0.0.0/0", "10.0.0.1, ::/0", "0.0.0.0/1,128.0.0.0/1", "::ffff:0:0/96"],
)
def test_bad_proxy_list_is_refused(monkeypatch, proxies):
    """Every address trusted would let any caller choose the address it is limited by."""
    monkeypatch.setenv("SMSREG_TRUSTED_PROXIES", proxies)
    with pytest.raises(ValueError, match="TRUSTED_PROXIES|trusted_proxies"):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("sms.example.co.jp", "absolute"),
        ("ftp://sms.example.co.jp", "absolute"),
        ("https://sms_gw.example.co.jp", "underscore"),
        ("https://sms.example.co.jp/?x=1", "no query"),
        ("https://user:pw@sms.example.co.jp", "no query"),
    ],
)
def test_a_public_base_url_twilio_cannot_call_is_refused(url, why):
    with pytest.raises(ValidationError, match=why):
        Settings(public_base_url=url, _env_file=None)


def test_a_public_base_url_with_a_path_is_taken():
    url = "https://gw.example.co.jp/smsreg"
    assert Settings(public_base_url=url, _env_file=None).public_base_url == url


def test_a_random_short_token_is_taken():
    """`openssl rand -hex 8`: 16 characters, often with repeated ones, is still random."""
    for token in ("00aa11bb22cc33dd", secrets.token_hex(8), "a1a1a1a1a1a1a1a2"):
        Settings(
            environment="production", sms_sender="twilio", metrics_token=token, _env_file=None,
            **KEYS,
        )  # fmt: skip


def test_a_refused_database_url_is_never_quoted():
    """pydantic quoted the input: a URL's password went into the error (and its logs)."""
    with pytest.raises(ValidationError) as refused:
        Settings(database_url="mysql://user:s3cr3t-pw@db.example/x", _env_file=None)
    assert "s3cr3t-pw" not in str(refused.value)


@pytest.mark.parametrize(
    ("env_file", "port"),
    [(None, "8101"), ("other.env", "8102"), ("", "8000")],  # default, named, none
)
def test_the_dotenv_file_is_dot_env_unless_smsreg_env_file_names_another(tmp_path, env_file, port):
    """`.env` in the working directory by default; SMSREG_ENV_FILE names another, or (empty)
    none, which is how the suite keeps a developer's `.env` out of its settings."""
    (tmp_path / ".smsreg").mkdir()  # a checkout's development state
    for name, n in ((".env", 1), ("other.env", 2)):
        (tmp_path / name).write_text(f"SMSREG_PORT=810{n}\nSMSREG_DATABASE_URL=sqlite:///{n}.db\n")
    env = outside_environ()
    del env["SMSREG_ENV_FILE"]
    if env_file is not None:
        env["SMSREG_ENV_FILE"] = env_file
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    # The settings, and what the commands that read the database's address alone read.
    script = (
        "from app.core.config import Settings; from app.core.cli_support import database_url;"
        "print(Settings().port, database_url())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    database = {"8101": "sqlite:///1.db", "8102": "sqlite:///2.db"}.get(
        port, Settings.model_fields["database_url"].get_default()
    )
    assert result.stdout.split() == [port, database], result.stderr


def test_a_carrier_may_not_take_longer_than_a_stopping_worker_waits():
    """Else `smsreg worker` ran past OUTBOX_STOP_TIMEOUT_SECONDS on a silent carrier,
    until an orchestrator's kill left its sends `unknown`."""
    with pytest.raises(ConfigError, match="SMSREG_TWILIO_TIMEOUT_SECONDS .21. must not exceed"):
        Settings(sms_sender="twilio", twilio_timeout_seconds=21, _env_file=None)
    assert Settings(
        sms_sender="twilio",
        twilio_timeout_seconds=10,
        outbox_stop_timeout_seconds=15,
        _env_file=None,
    )  # fmt: skip  (the earlier default stop timeout still starts)
    assert Settings(outbox_stop_timeout_seconds=1, _env_file=None)  # the console sender
