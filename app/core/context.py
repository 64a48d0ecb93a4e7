"""What a service needs besides the session: settings, keys and the clock."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.clock import Clock
from app.core.config import Settings
from app.core.crypto import Keys


@dataclass(frozen=True)
class Context:
    """Built once per process; passed to every service call."""

    settings: Settings
    keys: Keys
    clock: Clock
