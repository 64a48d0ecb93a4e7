"""Ed25519 checkpoint signing: a key ring from settings, public keys for anyone.

A checkpoint signs ``b"smsreg-ledger-checkpoint/1\\n"`` followed by the canonical JSON
of ``{"created_at", "head_hash", "key_id", "kind", "seq"}`` (see canonical.py). The
key id is inside the signed bytes, so a signature cannot be passed off under another key.
Keys are 32-byte seeds, base64, in ``SMSREG_LEDGER_SIGNING_KEYS`` (``{"id": "seed"}``);
``SMSREG_LEDGER_SIGNING_KEY_ID`` names the one that signs. Keys retired from signing stay
in the ring: their public halves are still published and still verify old checkpoints.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from app.core.config import ConfigError, Settings
from app.core.key_material import is_placeholder
from app.ledger import canonical

ALGORITHM = "Ed25519"
DOMAIN = b"smsreg-ledger-checkpoint/1\n"
SEED_BYTES = 32
_ENV = "SMSREG_LEDGER_SIGNING_KEYS"


@dataclass(frozen=True)
class SigningRing:
    """The ledger's signing keys: which one signs, and every public key still trusted."""

    active_id: str
    private: Mapping[str, Ed25519PrivateKey]

    @functools.cached_property
    def public(self) -> dict[str, Ed25519PublicKey]:
        """Every public key, by key id."""
        return {key_id: key.public_key() for key_id, key in self.private.items()}

    def public_raw(self) -> dict[str, str]:
        """Every public key as base64 of its 32 raw bytes, by key id."""
        return {key_id: public_key_b64(key) for key_id, key in self.public.items()}

    def sign(self, message: bytes) -> str:
        """A base64 signature under the active key."""
        return base64.b64encode(self.private[self.active_id].sign(message)).decode()


def public_key_b64(key: Ed25519PublicKey) -> str:
    """A public key as base64 of its raw 32 bytes."""
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key from base64 of its raw 32 bytes; ValueError if it is not one."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a public key is base64 of 32 bytes") from exc
    if len(raw) != SEED_BYTES:
        raise ValueError("a public key is base64 of 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def checkpoint_message(
    *, kind: str, seq: int, head_hash: str, created_at: dt.datetime | str, key_id: str
) -> bytes:
    """The exact bytes a checkpoint's signature covers."""
    when = created_at if isinstance(created_at, str) else canonical.timestamp(created_at)
    document = {
        "created_at": when,
        "head_hash": head_hash,
        "key_id": key_id,
        "kind": kind,
        "seq": seq,
    }
    return DOMAIN + canonical.dumps(document)


def verify_signature(
    public: Mapping[str, Ed25519PublicKey], *, key_id: str, message: bytes, signature: str
) -> str | None:
    """None if the signature is good, else why not."""
    key = public.get(key_id)
    if key is None:
        return f"no trusted public key with id {key_id!r}"
    try:
        key.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, binascii.Error, ValueError):
        return f"the signature does not verify under key {key_id!r}"
    return None


def ring(settings: Settings) -> SigningRing:
    """The signing ring of these settings; ConfigError if missing or malformed.

    In development a missing ring is generated once into the state folder (see
    ``Settings.with_dev_secrets``); elsewhere it is required, and the app refuses to
    start without it.
    """
    if not settings.ledger_signing_keys:
        settings = settings.with_dev_secrets()
    keys = tuple(
        (key_id, secret.get_secret_value())
        for key_id, secret in sorted(settings.ledger_signing_keys.items())
    )
    return _ring(keys, settings.ledger_signing_key_id)


@functools.lru_cache(maxsize=8)
def _ring(keys: tuple[tuple[str, str], ...], active: str | None) -> SigningRing:
    if not keys:
        raise ConfigError(f"{_ENV} is required outside development")
    private = {}
    for key_id, text in keys:
        if not 1 <= len(key_id) <= 40:
            raise ConfigError(f"{_ENV}: key ids are 1 to 40 characters")
        if is_placeholder(text):
            raise ConfigError(f"{_ENV}[{key_id}] is a placeholder, not a secret")
        try:
            seed = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"{_ENV}[{key_id}] is not valid base64") from exc
        if len(seed) != SEED_BYTES:
            raise ConfigError(f"{_ENV}[{key_id}] must decode to exactly {SEED_BYTES} bytes")
        private[key_id] = Ed25519PrivateKey.from_private_bytes(seed)
    if active is None:
        if len(private) != 1:
            raise ConfigError("SMSREG_LEDGER_SIGNING_KEY_ID must name the signing key")
        active = next(iter(private))
    if active not in private:
        raise ConfigError(f"SMSREG_LEDGER_SIGNING_KEY_ID names no key in {_ENV}")
    return SigningRing(active_id=active, private=private)
