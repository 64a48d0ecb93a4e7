"""The staff password policy (length, common, the username, zxcvbn) and its maximum age.

The policy is a well-kept library's judgement, not a hand-written rule set: zxcvbn
(Dropbox's estimator, with its bundled lists of common passwords, words and names)
estimates how many guesses a password takes. The only rules written here are the ones
the issue names: the length and "not containing the username".
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any

from zxcvbn import zxcvbn

from app.core.config import Settings
from app.core.errors import Forbidden, InvalidInput

MAX_PASSWORD_LENGTH = 1024
# zxcvbn's own bound (its matching grows quickly with length: ~20 ms at 72 characters).
# A longer password is judged by its first 72 characters, which only ever errs strict.
ZXCVBN_MAX_CHARS = 72
PASSWORD_EXPIRED = "password_expired"  # noqa: S105 (a restriction's name)


class PasswordExpired(Forbidden):
    slug = "password-expired"
    title = "The password is past its maximum age: change it (PUT /v1/staff/me/password)"


def _normal(password: str) -> str:
    # The same NFKC form that is hashed (app.staff.accounts.normalize_password).
    return unicodedata.normalize("NFKC", password)


def check_policy(
    password: str, *, settings: Settings, username: str | None, field: str = "password"
) -> None:
    """Refuse a password that is short, common, holds the username or is easy to guess.

    Raises InvalidInput naming ``field``; the detail says which rule, never the password.
    """
    text = _normal(password)
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
    if _normal(current_password) == _normal(new_password):
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
