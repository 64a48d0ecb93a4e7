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

from app.core.crypto import KeyRing

SALT_BYTES = 16


def new_salt() -> bytes:
    """A fresh random salt from the OS CSPRNG."""
    return secrets.token_bytes(SALT_BYTES)


def derive(
    ring: KeyRing, *, key_id: str, verification_id: str, purpose: str, salt: bytes, length: int
) -> str:
    """The code for one verification."""
    message = b"|".join((b"smsreg-code-v1", verification_id.encode(), purpose.encode(), salt))
    digest = ring.mac(message, key_id=key_id)
    # 64 bits reduced mod 10^length: the bias is below 10^10 / 2^64, i.e. negligible.
    value = int.from_bytes(digest[:8], "big") % (10**length)
    return str(value).zfill(length)


def matches(expected: str, given: str) -> bool:
    """Constant-time comparison of two codes."""
    return hmac.compare_digest(expected.encode(), given.encode())
