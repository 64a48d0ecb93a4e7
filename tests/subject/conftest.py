from __future__ import annotations

from typing import Any

import pytest

from tests.staff.helpers import CHEAP_HASHING


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {**CHEAP_HASHING}
