"""What a service needs besides its transaction: settings, keys, the clock, shared counters."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.clock import Clock
from app.core.config import Settings
from app.core.counters import CounterBuffer
from app.core.crypto import Keys


@dataclass(frozen=True)
class Context:
    """Built once per process; passed to every service call."""

    settings: Settings
    keys: Keys
    clock: Clock
    # Shared counters written after commit, by one writer per process (the service's).
    counters: CounterBuffer | None = None
