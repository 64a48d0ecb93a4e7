"""Settings: every default number, and refusal to run production on missing or weak secrets."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from app.core.config import ConfigError, Settings

GOOD = base64.b64encode(b"k" * 32).decode()
KEYS = {f"{family}_keys": {"k1": GOOD} for family in ("phone", "index", "code", "token")}


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


@pytest.mark.parametrize("length", [3, 11])
def test_code_length_is_bounded(length):
    with pytest.raises(ValueError):
        Settings(code_length=length, _env_file=None)


def test_production_refuses_missing_secrets():
    with pytest.raises(ConfigError, match="SMSREG_PHONE_KEYS is required"):
        Settings(environment="production", sms_sender="twilio", _env_file=None)


@pytest.mark.parametrize("secret", ["changeme", base64.b64encode(b"short").decode(), "not base64!"])
def test_production_refuses_weak_or_placeholder_secrets(secret):
    keys = {**KEYS, "code_keys": {"k1": secret}}
    with pytest.raises(ConfigError, match="SMSREG_CODE_KEYS"):
        Settings(environment="production", sms_sender="twilio", _env_file=None, **keys)


def test_production_refuses_the_console_sender():
    with pytest.raises(ConfigError, match="console"):
        Settings(environment="production", _env_file=None, **KEYS)


def test_production_with_real_secrets_starts():
    s = Settings(
        environment="production",
        sms_sender="twilio",
        metrics_token="scrape-token-0123456789",
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
            metrics_token="scrape-token-0123456789",
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
    monkeypatch.setenv("SMSREG_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1")
    s = Settings(_env_file=None)
    assert s.allowed_regions == ["JP", "KR"]
    assert s.trusted_proxies == ["10.0.0.0/8", "192.168.1.1"]


def test_bad_proxy_list_is_refused(monkeypatch):
    monkeypatch.setenv("SMSREG_TRUSTED_PROXIES", "not-an-ip")
    with pytest.raises(ValueError):
        Settings(_env_file=None)
