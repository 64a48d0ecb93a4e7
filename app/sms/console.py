"""Development sender: prints each SMS and, if configured, appends it to a JSON Lines file.

This is the one place a number and a code are printed on purpose, so a newcomer can
finish a verification by hand. Settings refuse this sender outside development.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import sys
import threading
from pathlib import Path

import orjson

from app.core.clock import UTC
from app.sms.base import SendResult


class ConsoleSender:
    """Writes messages to stdout and an optional outbox file instead of a carrier."""

    name = "console"
    blocking = False

    def __init__(self, *, outbox: Path | None, echo: bool = True) -> None:
        self.outbox = outbox
        self.echo = echo
        self._lock = threading.Lock()
        self._count = 0
        self._fd: int | None = None
        if outbox is not None:
            outbox.parent.mkdir(parents=True, exist_ok=True)

    def _outbox_fd(self, path: Path) -> int:
        # Opened once in append mode: each message is then a single write of a whole
        # line, instead of an open, write and close per message. Owner-only, since
        # the file holds numbers and codes.
        if self._fd is None:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return self._fd

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)

    def send(
        self,
        *,
        to: str,
        body: str,
        reference: str | None = None,
        valid_for: int | None = None,
        bulk: bool = False,
    ) -> SendResult:
        """Print the message and append it to the outbox file."""
        now = dt.datetime.now(UTC)
        with self._lock:
            self._count += 1
            # Shaped like Twilio's message SIDs, so `smsreg sms simulate status --sid`
            # can report a delivery for it to the local service.
            message_id = "SM" + secrets.token_hex(16)
            if self.echo:
                print(f"[console SMS {message_id} to {to}]\n{body}\n", file=sys.stdout, flush=True)
            if self.outbox is not None:
                line = {"to": to, "body": body, "time": now.isoformat(), "id": message_id}
                os.write(self._outbox_fd(self.outbox), orjson.dumps(line) + b"\n")
        return SendResult(carrier=self.name, message_id=message_id)
