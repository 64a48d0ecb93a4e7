"""Fixtures of the consent tests."""

from __future__ import annotations

import pytest

from tests.consent.helpers import ALL_SCOPES, make_key


@pytest.fixture
async def full_auth(app) -> dict[str, str]:
    """A key with every service scope (verify, consent, deliver)."""
    return await make_key(app, ALL_SCOPES)
