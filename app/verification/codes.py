"""One-time codes: derived, never stored, checked in constant time.

A code is ``HMAC-SHA256(code key, id | purpose | salt)`` reduced to N decimal digits,
the HOTP construction (RFC 4226) with a fresh 128-bit CSPRNG salt per verification.
That gives NIST SP 800-63B 5.1.3 what it asks for: unpredictable without the key,
bound to the verification and purpose it was sent for, and nothing in the database
that reveals it (the salt is useless without the key, which lives outside). Because
the code can be re-derived, a resend repeats the same code instead of storing it.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Protocol

from app.core.crypto import KeyRing

SALT_BYTES = 16


def new_salt() -> bytes:
    """A fresh random salt from the OS CSPRNG."""
    return secrets.token_bytes(SALT_BYTES)


class Sent(Protocol):
    """What a verification's code is derived from: fields fixed when it started."""

    @property
    def id(self) -> str: ...
    @property
    def purpose(self) -> str: ...
    @property
    def code_key_id(self) -> str: ...
    @property
    def code_salt(self) -> bytes: ...
    @property
    def code_length(self) -> int: ...


def derive(ring: KeyRing, verification: Sent) -> str:
    """The code of one verification, under the code key it was started with."""
    v = verification
    message = b"|".join((b"smsreg-code-v1", v.id.encode(), v.purpose.encode(), v.code_salt))
    digest = ring.mac(message, key_id=v.code_key_id)
    # 64 bits reduced mod 10^length: the bias is below 10^10 / 2^64, i.e. negligible.
    value = int.from_bytes(digest[:8], "big") % (10**v.code_length)
    return str(value).zfill(v.code_length)


def matches(expected: str, given: str) -> bool:
    """Constant-time comparison of two codes."""
    return hmac.compare_digest(expected.encode(), given.encode())
