"""Opaque identifiers with a readable prefix."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    """A random opaque id such as ``ver_3q2K...`` (128 bits of randomness)."""
    return f"{prefix}_{secrets.token_urlsafe(16)}"
