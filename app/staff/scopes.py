"""What a service client's API key may do."""

from __future__ import annotations

import enum


class Scope(enum.StrEnum):
    VERIFICATIONS_WRITE = "verifications:write"


DEFAULT_SCOPES = (Scope.VERIFICATIONS_WRITE,)
