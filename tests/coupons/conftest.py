"""Fixtures of the coupon tests."""

from __future__ import annotations

import pytest

from tests.coupons.helpers import bearer, make_key


@pytest.fixture
async def token(app) -> str:
    """A key that may verify numbers and record redemptions."""
    return await make_key(app)


@pytest.fixture
def coupon_auth(token) -> dict[str, str]:
    return bearer(token)
