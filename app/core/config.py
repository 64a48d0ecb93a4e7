"""The one Settings object: every setting and its default, read from SMSREG_* variables."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.core.key_material import (
    SECRET_FAMILIES,
    decode_key,
    dev_ledger_signing,
    is_placeholder,
    load_or_create_dev_secrets,
    looks_random,
)

Environment = Literal["development", "production"]


class ConfigError(RuntimeError):
    """Raised when the settings cannot run safely (e.g. a missing secret in production)."""


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            return json.loads(value)
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


ENV_FILE = os.environ.get("SMSREG_ENV_FILE", ".env") or None
"""The dotenv file settings are also read from: `SMSREG_ENV_FILE`, else `.env` in the
working directory; set empty, none is read (the test suite's own settings are all it sees)."""

MIN_TOKEN_CHARS = 16
"""The metrics token's least length outside development."""


DEFAULT_DATABASE_URL = "sqlite:///.smsreg/smsreg.db"


def default_database_url(environment: str, state_dir: Path) -> str:
    """The database when SMSREG_DATABASE_URL is not given. In development the SQLite file
    in the state folder, wherever SMSREG_STATE_DIR puts it (else a command pointed at
    another folder's state opened ./.smsreg's file); elsewhere where it always was, so an
    installation on SQLite keeps its file across an upgrade."""
    if environment == "development":
        return f"sqlite:///{state_dir / 'smsreg.db'}"
    return DEFAULT_DATABASE_URL


class Settings(BaseSettings):
    """Runtime configuration; docs/operations.md has the table of settings."""

    # An empty variable is an unset one (compose passes ${SMSREG_X:-} as ""): each such
    # setting keeps its default.
    model_config = SettingsConfigDict(
        env_prefix="SMSREG_",
        env_file=ENV_FILE,
        extra="ignore",
        env_ignore_empty=True,
        # A refused value is never quoted: a database URL holds its password, a ring its keys.
        hide_input_in_errors=True,
    )

    environment: Environment = "development"
    database_url: str = DEFAULT_DATABASE_URL
    state_dir: Path = Path(".smsreg")
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Scrapes of /metrics must send this bearer token; unset: open (development only).
    metrics_token: SecretStr | None = None
    # PostgreSQL connections per process (the pool and its overflow), and how long a
    # statement or a lock wait may take before it is cancelled.
    db_pool_size: int = Field(10, ge=1, le=200)
    db_pool_overflow: int = Field(0, ge=0, le=200)
    db_pool_timeout_seconds: float = Field(10.0, gt=0, le=300)
    db_statement_timeout_ms: int = Field(30_000, ge=100, le=3_600_000)
    db_lock_timeout_ms: int = Field(10_000, ge=100, le=3_600_000)
    # SQLite's page cache per connection, in MiB. A request reads indexes keyed by
    # random values (blind indexes), so once the database outgrows the cache most of
    # those reads miss it; SQLite's own default is 2 MiB.
    sqlite_cache_mb: int = Field(64, ge=2, le=65_536)
    service_name: str = "smsreg"
    # Who runs the service, on the data subjects' pages (/my/): a person arriving from an
    # SMS must be able to tell them from a phishing page and know where else to ask.
    privacy_contact: str | None = Field(None, max_length=300)
    privacy_policy_url: str | None = Field(None, max_length=500, pattern=r"^https?://\S+$")

    # Secrets: key rings as JSON objects {"key id": "base64 of >= 32 bytes"}.
    phone_keys: dict[str, SecretStr] = Field(default_factory=dict)
    phone_key_id: str | None = None
    index_keys: dict[str, SecretStr] = Field(default_factory=dict)
    index_key_id: str | None = None
    code_keys: dict[str, SecretStr] = Field(default_factory=dict)
    code_key_id: str | None = None
    token_keys: dict[str, SecretStr] = Field(default_factory=dict)
    token_key_id: str | None = None
    # `smsreg keys rotate`: rows per transaction, and a pause between batches so the
    # running service's writers get the (SQLite) write lock in between.
    key_rotation_batch_size: int = Field(500, ge=1, le=10_000)
    key_rotation_pause_seconds: float = Field(0.1, ge=0, le=60)

    # Phone numbers
    allowed_regions: Annotated[list[str], NoDecode] = ["JP", "KR"]
    default_region: str = "JP"
    prefix_digits: int = Field(4, ge=1, le=8, description="national digits in a limit prefix")

    # Codes (NIST SP 800-63B 5.1.3)
    code_length: int = Field(6, ge=4, le=10)
    # Whole minutes: the SMS says how many minutes the code is valid, never more than it is.
    code_ttl_seconds: int = Field(600, ge=60, le=600, multiple_of=60)
    max_check_attempts: int = Field(5, ge=1, le=20)

    # Send limits
    resend_cooldown_seconds: int = Field(30, ge=0)
    sends_per_number_hour: int = Field(5, ge=1)
    sends_per_number_day: int = Field(10, ge=1)
    # The self-service pages' own window of a number's sends (app/verification/limits.py):
    # a person signing in needs a code or two, and a number gets at most both windows.
    self_service_sends_per_number_hour: int = Field(3, ge=1)
    self_service_sends_per_number_day: int = Field(5, ge=1)
    # Well below the pumping guard's trigger: one address is throttled long before it
    # could make a number range look pumped.
    sends_per_ip_hour: int = Field(10, ge=1)
    sends_per_prefix_hour: int = Field(200, ge=1)
    trusted_proxies: Annotated[list[str], NoDecode] = []
    sends_per_country_hour: int = Field(10_000, ge=1)
    country_send_caps: dict[str, int] = Field(
        default_factory=dict, description="per-region hourly caps overriding the default"
    )

    # Pumping guard: a prefix whose sends stop turning into approvals is blocked
    pumping_window_minutes: int = Field(60, ge=5)
    pumping_min_sends: int = Field(30, ge=1)
    # A range is blocked only on unconverted sends from this many client addresses: one
    # source alone can never block a range for everyone.
    pumping_min_sources: int = Field(3, ge=2)
    pumping_min_conversion: float = Field(0.1, ge=0, le=1)
    pumping_grace_seconds: int = Field(180, ge=0)
    pumping_cooloff_minutes: int = Field(60, ge=1)
    idempotency_ttl_hours: int = Field(24, ge=1)

    # HTTP
    # A disclosure request at its documented limits (8,000 characters of text, 1,000 subject
    # ids), sent as a console form (a Japanese character is 9 bytes URL-encoded): ~100 KiB.
    max_body_bytes: int = Field(131_072, ge=1024)

    # SMS
    sms_sender: Literal["console", "twilio"] = "console"
    console_outbox: Path | None = None
    console_print: bool = True
    webotp_domain: str | None = "localhost"
    templates_dir: Path | None = None
    outbox_dispatch: Literal["background", "external"] = "background"
    # The outbox worker: messages claimed at once, sent at once, how long a claim lasts
    # unless renewed, the longest wait between retries of a message the carrier did not
    # take (a code is retried until it expires), and how long a stopping worker may take
    # to finish the sends in flight.
    outbox_batch: int = Field(50, ge=1, le=1000)
    outbox_concurrency: int = Field(8, ge=1, le=64)
    outbox_lease_seconds: int = Field(60, ge=10, le=3600)
    outbox_retry_max_delay_seconds: float = Field(30, ge=1, le=3600)
    outbox_stop_timeout_seconds: float = Field(20, gt=0, le=600)
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    # Twilio's secondary auth token while the account's token is rotated: webhooks signed
    # with either are believed (docs/operations.md, "Rotating the Twilio auth token").
    twilio_secondary_auth_token: SecretStr | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_from_number: str | None = None
    # Campaign messages through a Messaging Service of their own: a STOP to a campaign
    # then blocks (at Twilio) only campaigns, and a campaign's queue never holds a code.
    twilio_campaign_messaging_service_sid: str | None = None
    # Another endpoint for Twilio's REST API (a regional edge, a gateway, a local fake);
    # https only, except a loopback address in development.
    twilio_api_base_url: str | None = None
    twilio_timeout_seconds: float = Field(10, gt=0, le=120)
    # The URL Twilio calls is signed; behind a proxy it cannot be read off the request
    # reliably, so the public base URL is configured (e.g. https://sms.example.co.jp).
    public_base_url: str | None = None

    # Staff and service credentials
    password_min_length: int = Field(12, ge=8)
    password_max_age_days: int = Field(90, ge=0)
    session_max_hours: int = Field(12, ge=1, le=12)
    # Staff sessions and logins
    session_idle_minutes: int = Field(30, ge=1, le=720, description="a quiet session ends")
    login_max_failures: int = Field(5, ge=1, le=100, description="wrong passwords before a lock")
    login_lockout_minutes: int = Field(15, ge=1, le=1440, description="how long a lock lasts")
    # Login throttles, shared through the database: wrong passwords from one
    # address for one username (login_max_failures of them lock that source, not the
    # account), and from one address for any username, within the lockout's window.
    login_failures_per_ip: int = Field(20, ge=1, le=10_000)
    # Separation of duties: invitations, role grants under four eyes, the
    # command line's break-glass admin, and the review when an admin leaves.
    staff_invitation_hours: int = Field(72, ge=1, le=720, description="an invitation lives")
    staff_grant_hours: int = Field(72, ge=1, le=720, description="a grant proposal lives")
    break_glass_hours: int = Field(24, ge=1, le=168, description="a break-glass admin lives")
    offboarding_review_days: int = Field(90, ge=1, le=3660)
    # argon2id parameters (argon2-cffi's defaults, RFC 9106's second recommendation).
    password_hash_time_cost: int = Field(3, ge=1, le=20)
    password_hash_memory_kib: int = Field(65_536, ge=1024, le=4_194_304)
    password_hash_parallelism: int = Field(4, ge=1, le=16)
    permission_history_retention_days: int = Field(3 * 365 + 1, ge=3 * 365)
    api_key_max_age_days: int = Field(180, ge=1)
    api_key_grace_hours: int = Field(24, ge=0)
    # Offboarding rotates the API keys the person created; their old keys live this long.
    offboarding_grace_hours: int = Field(0, ge=0, le=720)
    api_key_due_within_days: int = Field(
        14, ge=0, le=365, description="`smsreg api-keys due` lists keys this close to their age"
    )
    # Staff credentials: password strength, TOTP second factor, the due report.
    password_min_score: int = Field(3, ge=0, le=4, description="zxcvbn score a password needs")
    password_due_within_days: int = Field(
        14, ge=0, le=365, description="`smsreg credentials due` lists passwords this close"
    )
    totp_required_roles: list[Literal["privacy_officer", "operator", "auditor", "admin"]] = [
        "privacy_officer",
        "admin",
    ]
    totp_issuer: str = Field("smsreg", min_length=1, max_length=64, pattern=r"^[^:]+$")
    totp_drift_steps: int = Field(1, ge=0, le=2, description="30 s steps accepted either way")

    # Coupon redemptions
    coupon_verification_window_minutes: int = Field(
        10, ge=1, le=1440, description="how long after its approval a verification backs one"
    )
    coupon_redemptions_per_number: int = Field(1, ge=1, le=1000)
    coupon_redemption_limits: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")],
        Annotated[int, Field(ge=1, le=1000)],
    ] = Field(default_factory=dict, description="per-coupon limits overriding the default")

    # Consent and campaign delivery
    # An inbound SMS whose whole body is one of these (trimmed, NFKC, any case) opts out.
    # Twilio's own opt-out keywords among them (Advanced Opt-Out's defaults, which block
    # the number at Twilio too), and the form's OptOutType=STOP whatever the body.
    stop_words: Annotated[list[str], NoDecode] = [
        "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
        "停止", "配信停止", "中止", "수신거부", "거부", "중지",
    ]  # fmt: skip
    # Appended to every campaign message, per language (JSON; missing languages keep these).
    delivery_opt_out_lines: dict[str, str] = {
        "ja": "配信停止はSTOPと返信",
        "ko": "수신거부: STOP 회신",
        "en": "Reply STOP to opt out",
    }
    delivery_max_segments: int = Field(3, ge=1, le=10, description="SMS parts per message")
    delivery_ttl_hours: int = Field(24, ge=1, le=168, description="unsent campaign SMS expire")
    delivery_batch_size: int = Field(2000, ge=100, le=50_000, description="rows per transaction")

    # Retention
    unverified_retention_hours: int = Field(24, ge=1)
    verification_retention_days: int = Field(183, ge=1)
    access_log_retention_days: int = Field(365, ge=365)
    ledger_retention_days: int = Field(3 * 365 + 1, ge=3 * 365)
    dormant_after_days: int = Field(365, ge=1)
    dormant_notice_days: int = Field(30, ge=0)
    # `smsreg purge` erases subscribers with no verification, redemption or delivery for
    # dormant_after_days. Off by default: no law in force requires it (Korea repealed
    # its mandate in 2023), and it is each operator's choice.
    dormant_erasure: bool = False
    # An erased subscriber's redemptions, as counts by coupon under the number's blind
    # index, so that erasing and verifying again does not renew a coupon's limit per
    # number: kept this long after the last of them.
    coupon_limit_memory_days: int = Field(365, ge=1, le=3 * 365 + 1)

    # Data subjects: a session opened by SMS, and the time to answer a request.
    subject_session_minutes: int = Field(15, ge=1, le=60, description="a subject session lives")
    subject_request_due_days: int = Field(10, ge=1, le=30, description="a request is due within")
    # Subject requests and erasure receipts: kept as long as the ledger (proof of answer).
    subject_request_retention_days: int = Field(3 * 365 + 1, ge=3 * 365)

    # Disclosure ledger: Ed25519 signing seeds {"key id": "base64 of 32 bytes"}.
    # Retired keys stay in the ring so the checkpoints they signed still verify.
    ledger_signing_keys: dict[str, SecretStr] = Field(default_factory=dict)
    ledger_signing_key_id: str | None = None
    ledger_checkpoint_interval_seconds: float = Field(3600, ge=0, description="0: on demand only")
    # Where every signed checkpoint is also appended (app/ledger/witness.py): a file on
    # another volume than the database's. None: no witness (verify says so).
    ledger_witness: Path | None = None

    @field_validator("allowed_regions", "trusted_proxies", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("allowed_regions")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [region.upper() for region in value]

    @field_validator("country_send_caps")
    @classmethod
    def _caps(cls, value: dict[str, int]) -> dict[str, int]:
        if any(cap < 1 for cap in value.values()):
            raise ValueError("every cap must be at least 1")
        return {region.upper(): cap for region, cap in value.items()}

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url(cls, value: str | None) -> str | None:
        # Twilio calls it (status callbacks name it, webhooks are signed over it), and
        # refuses a StatusCallback whose host holds an underscore.
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL, e.g. https://sms.example.co.jp")
        if "_" in parts.hostname:
            raise ValueError("must not have an underscore in its host name (Twilio refuses it)")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must be a base URL: no query, fragment or credentials")
        return value

    @field_validator("stop_words", mode="before")
    @classmethod
    def _stop_words_csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("stop_words")
    @classmethod
    def _stop_words(cls, value: list[str]) -> list[str]:
        words = [word.strip() for word in value if word.strip()]
        if not words:
            raise ValueError("at least one stop word is needed")
        return words

    @field_validator("delivery_opt_out_lines")
    @classmethod
    def _opt_out_lines(cls, value: dict[str, str]) -> dict[str, str]:
        defaults = cls.model_fields["delivery_opt_out_lines"].default
        unknown = sorted(set(value) - set(defaults))
        if unknown:
            raise ValueError(f"languages must be some of {sorted(defaults)}, not {unknown}")
        lines = {**defaults, **{language: line.strip() for language, line in value.items()}}
        if not all(lines.values()):
            raise ValueError("an opt-out line may not be empty")
        return lines

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        try:
            backend = make_url(value).get_backend_name()
        except ArgumentError:
            backend = None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError("must be a sqlite:///path or postgresql://user@host/db URL")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        named = []
        for item in value:
            network = ipaddress.ip_network(item, strict=False)
            widest = _WIDEST_PROXY_NETWORK[network.version]
            if isinstance(network, ipaddress.IPv6Network) and network[0].ipv4_mapped is not None:
                widest = 96 + _WIDEST_PROXY_NETWORK[4]  # IPv4 addresses, written as IPv6
            if network.prefixlen < widest:
                # Every caller, or most, would choose the address it is limited and
                # recorded by (0.0.0.0/0, or 0.0.0.0/1 with 128.0.0.0/1).
                raise ValueError(f"{item} is far wider than any proxy: name the proxies' own")
            # A network as uvicorn reads one ("10.0.0.1/8" would be taken as a name).
            named.append(str(network) if "/" in item else item)
        return named

    @model_validator(mode="after")
    def _database_in_the_state_folder(self) -> Settings:
        if "database_url" not in self.model_fields_set:
            self.database_url = default_database_url(self.environment, self.state_dir)
        return self

    @model_validator(mode="after")
    def _secondary_token_beside_the_first(self) -> Settings:
        if self.twilio_secondary_auth_token is not None and self.twilio_auth_token is None:
            raise ConfigError(
                "SMSREG_TWILIO_SECONDARY_AUTH_TOKEN is for a rotation: it needs "
                "SMSREG_TWILIO_AUTH_TOKEN beside it"
            )
        return self

    @model_validator(mode="after")
    def _carrier_answers_before_a_stop(self) -> Settings:
        # A stopping worker waits for its sends in flight: a carrier allowed longer than
        # the stop timeout kept it running past it, until an orchestrator's kill left
        # those sends `unknown`. (A request may take its timeout to connect and again for
        # the answer: docs/operations.md says to give the stop twice the timeout.)
        if self.sms_sender == "twilio" and (
            self.twilio_timeout_seconds > self.outbox_stop_timeout_seconds
        ):
            raise ConfigError(
                f"SMSREG_TWILIO_TIMEOUT_SECONDS ({self.twilio_timeout_seconds:g}) must not "
                "exceed SMSREG_OUTBOX_STOP_TIMEOUT_SECONDS "
                f"({self.outbox_stop_timeout_seconds:g}): a stopping worker waits for each "
                "send in flight"
            )
        return self

    @model_validator(mode="after")
    def _production_is_strict(self) -> Settings:
        if self.environment == "development":
            return self
        if self.sms_sender == "console":
            raise ConfigError("the console SMS sender is for development only")
        families: dict[bytes, str] = {}
        for family in SECRET_FAMILIES:
            _, ring = self.key_ring(family)  # raises ConfigError when missing or weak
            for key_id, key in ring.items():
                if not looks_random(key):
                    raise ConfigError(
                        f"SMSREG_{family.upper()}_KEYS[{key_id}] is not random (too few "
                        "distinct bytes): make one with `smsreg keys new`"
                    )
                if families.setdefault(key, family) != family:
                    raise ConfigError(
                        f"SMSREG_{families[key].upper()}_KEYS and SMSREG_{family.upper()}_KEYS "
                        "share a key: each family needs keys of its own"
                    )
        for key_id, secret in self.ledger_signing_keys.items():
            # A seed anyone can guess signs forged checkpoints: as strict as the rings.
            try:
                seed = base64.b64decode(secret.get_secret_value(), validate=True)
            except (binascii.Error, ValueError):
                continue  # the ledger's own check names it (app.ledger.signing)
            if not looks_random(seed):
                raise ConfigError(
                    f"SMSREG_LEDGER_SIGNING_KEYS[{key_id}] is not random (too few distinct "
                    "bytes): make one with `smsreg keys new`"
                )
            if seed in families:
                raise ConfigError(
                    f"SMSREG_LEDGER_SIGNING_KEYS[{key_id}] is also a key of "
                    f"SMSREG_{families[seed].upper()}_KEYS: each family needs keys of its own"
                )
        if self.metrics_token is None:
            raise ConfigError("SMSREG_METRICS_TOKEN is required outside development")
        token = self.metrics_token.get_secret_value()
        if is_placeholder(token):
            raise ConfigError("SMSREG_METRICS_TOKEN is a placeholder (openssl rand -hex 24)")
        if len(token) < MIN_TOKEN_CHARS or _repeats(token):
            raise ConfigError(
                f"SMSREG_METRICS_TOKEN must be a random secret of at least {MIN_TOKEN_CHARS} "
                "characters (openssl rand -hex 24)"
            )
        for name, auth in (
            ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
            ("TWILIO_SECONDARY_AUTH_TOKEN", self.twilio_secondary_auth_token),
        ):
            placeholder = auth is not None and is_placeholder(auth.get_secret_value())
            if self.sms_sender == "twilio" and placeholder:
                raise ConfigError(f"SMSREG_{name} is a placeholder, not the account's token")
        if self.twilio_api_base_url and not self.twilio_api_base_url.startswith("https://"):
            raise ConfigError("SMSREG_TWILIO_API_BASE_URL must be https outside development")
        return self

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is the embedded SQLite file."""
        return self.database_url.startswith("sqlite")

    def key_ring(self, family: str) -> tuple[str, dict[str, bytes]]:
        """Return (active key id, {key id: key bytes}) for a secret family, validated."""
        ring: dict[str, SecretStr] = getattr(self, f"{family}_keys")
        active: str | None = getattr(self, f"{family}_key_id")
        env = f"SMSREG_{family.upper()}_KEYS"
        if not ring:
            raise ConfigError(f"{env} is required outside development")
        try:
            decoded = {key_id: decode_key(key_id, secret) for key_id, secret in ring.items()}
        except ValueError as exc:
            raise ConfigError(f"{env}{exc}") from exc
        if active is None:
            if len(ring) != 1:
                raise ConfigError(
                    f"SMSREG_{family.upper()}_KEY_ID is not set, and {env} holds "
                    f"{len(ring)} keys: set it to the id of the key in use now (the one "
                    "that was alone in the ring), then make the new one active later"
                )
            active = next(iter(ring))
        if active not in decoded:
            raise ConfigError(f"SMSREG_{family.upper()}_KEY_ID names no key in {env}")
        return active, decoded

    def with_dev_secrets(self) -> Settings:
        """In development, fill missing key rings from a local file, creating it once."""
        if self.environment != "development":
            return self
        if not self.ledger_signing_keys:
            return self.model_copy(update=dev_ledger_signing(self.state_dir)).with_dev_secrets()
        missing = [family for family in SECRET_FAMILIES if not getattr(self, f"{family}_keys")]
        if not missing:
            return self
        path = self.state_dir / "dev-secrets.json"
        stored = load_or_create_dev_secrets(path)
        update: dict[str, object] = {}
        for family in missing:
            update[f"{family}_keys"] = {"dev1": SecretStr(stored[family])}
            update[f"{family}_key_id"] = "dev1"
        return self.model_copy(update=update)


# The widest network a proxy list may name, by IP version: 10.0.0.0/8, fc00::/7.
_WIDEST_PROXY_NETWORK = {4: 8, 6: 7}


def _repeats(token: str) -> bool:
    """Whether a token is a shorter piece said again (``changemechangeme...``): a word
    made long enough, not a random secret."""
    return any(
        token == (token[:width] * (len(token) // width + 1))[: len(token)]
        for width in range(1, len(token) // 2 + 1)
    )
