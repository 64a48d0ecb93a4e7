"""Key material in the settings: a secret family's keys decoded and checked, new keys,
and the development keys made on a first run."""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

# Secret families. Each is a key ring {key_id: base64 key} plus the id new writes use,
# so every row can name the key that protects it and keys can be rotated.
SECRET_FAMILIES = ("phone", "index", "code", "token")
_PLACEHOLDERS = {"changeme", "changethis", "secret", "default", "dev"}
MIN_KEY_BYTES = 32
# 32 random bytes hold about 30 distinct values; fewer than this is a made-up key
# (all zeros, one byte repeated), whatever its length.
MIN_DISTINCT_BYTES = 16


def is_placeholder(value: str) -> bool:
    """Whether a secret setting still holds a stand-in: a word such as ``changeme``, or
    docker/env.example's ``replace-with-...``."""
    text = value.strip().lower()
    return text in _PLACEHOLDERS or text.startswith("replace-with")


def decode_key(key_id: str, secret: SecretStr) -> bytes:
    """One key of a ring; ValueError ("[key_id] is ...") if it is not a usable secret."""
    raw = secret.get_secret_value()
    if is_placeholder(raw):
        raise ValueError(f"[{key_id}] is a placeholder, not a secret")
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"[{key_id}] is not valid base64") from exc
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"[{key_id}] must decode to at least {MIN_KEY_BYTES} bytes")
    return key


def looks_random(key: bytes) -> bool:
    """Whether a key could have come from a random source (not all zeros, not one byte
    repeated): what production asks of every key."""
    return len(set(key)) >= MIN_DISTINCT_BYTES


def new_key() -> str:
    """A fresh random 32-byte key, base64-encoded, for a key ring."""
    return base64.b64encode(secrets.token_bytes(MIN_KEY_BYTES)).decode()


def load_or_create_dev_secrets(path: Path) -> dict[str, str]:
    """Development keys for every family, from ``path``, made and stored there once."""
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        if all(family in data for family in SECRET_FAMILIES):
            return data
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {family: new_key() for family in SECRET_FAMILIES}
    # Owner-only from the first byte: the file holds every development key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    return data


def dev_ledger_signing(state_dir: Path) -> dict[str, object]:
    """The development ledger signing seed, in its own file so dev-secrets.json is untouched."""
    path = state_dir / "dev-ledger-signing.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # owner-only
    except FileExistsError:
        seed = str(json.loads(path.read_text())["ledger_signing"])
    else:
        seed = new_key()  # 32 random bytes: a valid Ed25519 seed
        with os.fdopen(fd, "w") as handle:
            json.dump({"ledger_signing": seed}, handle)
    return {"ledger_signing_keys": {"dev1": SecretStr(seed)}, "ledger_signing_key_id": "dev1"}
