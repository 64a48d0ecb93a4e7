"""What a service client's API key may do."""

from __future__ import annotations

import enum


class Scope(enum.StrEnum):
    VERIFICATIONS_WRITE = "verifications:write"
    CONSENTS_WRITE = "consents:write"
    DELIVERIES_WRITE = "deliveries:write"
    COUPONS_WRITE = "coupons:write"


DEFAULT_SCOPES = (Scope.VERIFICATIONS_WRITE,)
