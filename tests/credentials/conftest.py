"""Staff tests hash passwords with argon2id at its cheapest, so they run fast."""

from __future__ import annotations

from typing import Any

import pytest

from tests.staff.helpers import CHEAP_HASHING


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return dict(CHEAP_HASHING)
