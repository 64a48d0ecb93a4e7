"""The staff password policy (length, common, the username, zxcvbn) and its maximum age.

The policy is a well-kept library's judgement, not a hand-written rule set: zxcvbn
(Dropbox's estimator, with its bundled lists of common passwords, words and names)
estimates how many guesses a password takes. The only rules written here are the length
and "not containing the username".
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
import threading
import unicodedata
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from app.core.config import Settings
from app.core.errors import Forbidden, InvalidInput

MAX_PASSWORD_LENGTH = 1024
# zxcvbn's own bound (its matching grows quickly with length: ~20 ms at 72 characters).
# A longer password is judged by its first 72 characters, which only ever errs strict.
ZXCVBN_MAX_CHARS = 72
PASSWORD_EXPIRED = "password_expired"  # noqa: S105 (a restriction's name)
# At most this many argon2 computations at once in the process: each takes
# password_hash_memory_kib of memory (64 MiB by default), so a burst of logins must
# queue rather than exhaust memory; CPU is the real limit anyway.
_HASH_SLOTS = threading.BoundedSemaphore(4)


class PasswordExpired(Forbidden):
    slug = "password-expired"
    title = "The password is past its maximum age: change it (PUT /v1/staff/me/password)"
    # Raised by the staff session check, which has only recorded the session's use: that
    # use still counts towards its idle timeout.
    commit = True


def normalize_password(password: str) -> str:
    """NFKC, so the same password typed on another keyboard or device still matches
    (NIST SP 800-63B 5.1.1.2). What is hashed and what the policy judges."""
    return unicodedata.normalize("NFKC", password)


def check_policy(
    password: str, *, settings: Settings, username: str | None, field: str = "password"
) -> None:
    """Refuse a password that is short, common, holds the username or is easy to guess.

    Raises InvalidInput naming ``field``; the detail says which rule, never the password.
    """
    text = normalize_password(password)
    if len(text) < settings.password_min_length:
        raise InvalidInput.field(
            field, f"must be at least {settings.password_min_length} characters"
        )
    if len(text) > MAX_PASSWORD_LENGTH:
        raise InvalidInput.field(field, f"must be at most {MAX_PASSWORD_LENGTH} characters")
    if username and username.casefold() in text.casefold():
        raise InvalidInput.field(field, "must not contain the username")
    judged = text[:ZXCVBN_MAX_CHARS]
    result = zxcvbn(judged, user_inputs=[username] if username else [])
    if _is_common(result, judged):
        raise InvalidInput.field(field, "is a common password; choose another")
    if result["score"] < settings.password_min_score:
        warning = result["feedback"].get("warning") or "it follows a predictable pattern"
        raise InvalidInput.field(
            field,
            f"is too easy to guess ({warning.rstrip('.')}); a few uncommon words work well",
        )


def _is_common(result: dict[str, Any], judged: str) -> bool:
    """Whether most of the password is one entry of zxcvbn's list of common passwords
    (as it is, reversed or in l33t), such as ``password1234!``."""
    return any(
        match.get("pattern") == "dictionary"
        and match.get("dictionary_name") == "passwords"
        and len(str(match.get("token", ""))) * 2 > len(judged)
        for match in result.get("sequence", [])
    )


def must_differ(current_password: str, new_password: str) -> None:
    """A new password must not be the current one (compared as they are hashed)."""
    if normalize_password(current_password) == normalize_password(new_password):
        raise InvalidInput.field("new_password", "must differ from the current password")


def expires_at(settings: Settings, changed_at: dt.datetime) -> dt.datetime | None:
    """When a password changed at ``changed_at`` passes its maximum age (None: never)."""
    if settings.password_max_age_days == 0:
        return None
    return changed_at + dt.timedelta(days=settings.password_max_age_days)


def is_expired(settings: Settings, changed_at: dt.datetime, now: dt.datetime) -> bool:
    """Whether the password is past its maximum age: its sessions may only change it."""
    end = expires_at(settings, changed_at)
    return end is not None and end <= now


# -- hashing: argon2id, off the event loop -----------------------------------------------


@functools.lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def hasher(settings: Settings) -> PasswordHasher:
    """The argon2id hasher with the configured parameters."""
    return _hasher(
        settings.password_hash_time_cost,
        settings.password_hash_memory_kib,
        settings.password_hash_parallelism,
    )


@functools.lru_cache(maxsize=8)
def _dummy_hash(time_cost: int, memory_kib: int, parallelism: int) -> str:
    # A hash of a random password nobody knows, with the same parameters as real ones:
    # verifying against it costs what verifying a real account's hash costs.
    return _hasher(time_cost, memory_kib, parallelism).hash(secrets.token_urlsafe(32))


def dummy_hash(settings: Settings) -> str:
    """What a login for a missing account is verified against, so it takes as long."""
    return _dummy_hash(
        settings.password_hash_time_cost,
        settings.password_hash_memory_kib,
        settings.password_hash_parallelism,
    )


def hash_password_sync(settings: Settings, password: str) -> str:
    """argon2id hash of a password (blocking; ~100 ms with the default parameters)."""
    with _HASH_SLOTS:
        return hasher(settings).hash(normalize_password(password))


@dataclass(frozen=True)
class PasswordCheck:
    """Whether a password matched, and its new hash if the parameters have changed."""

    ok: bool
    rehash: str | None = None


def verify_password_sync(settings: Settings, stored: str | None, password: str) -> PasswordCheck:
    """Verify a password against a stored hash, or against the dummy hash when there is
    none (a missing account), so both cost the same time. Blocking."""
    ph = hasher(settings)
    candidate = normalize_password(password)
    # Made (once per process) whatever the account, so even the first login of a
    # missing account costs no more than the first of an existing one.
    dummy = dummy_hash(settings)
    with _HASH_SLOTS:
        try:
            ph.verify(stored if stored is not None else dummy, candidate)
        except (VerificationError, InvalidHashError):
            return PasswordCheck(ok=False)
        if stored is None:  # unreachable: nobody knows the dummy password
            return PasswordCheck(ok=False)
        rehash = ph.hash(candidate) if ph.check_needs_rehash(stored) else None
    return PasswordCheck(ok=True, rehash=rehash)


async def hash_password(settings: Settings, password: str) -> str:
    """:func:`hash_password_sync` in a worker thread."""
    return await anyio.to_thread.run_sync(hash_password_sync, settings, password)


async def verify_password(settings: Settings, stored: str | None, password: str) -> PasswordCheck:
    """:func:`verify_password_sync` in a worker thread."""
    return await anyio.to_thread.run_sync(verify_password_sync, settings, stored, password)


async def check_policy_apart(
    password: str, *, settings: Settings, username: str | None, field: str = "password"
) -> None:
    """:func:`check_policy` in a worker thread: zxcvbn takes up to ~20 ms of CPU."""
    await anyio.to_thread.run_sync(
        functools.partial(check_policy, password, settings=settings, username=username, field=field)
    )
