"""Choose the SMS sender from settings."""

from __future__ import annotations

from app.core.config import Settings
from app.sms.base import SmsSender
from app.sms.console import ConsoleSender


def build_sender(settings: Settings) -> SmsSender:
    """The configured sender."""
    if settings.sms_sender == "console":
        return ConsoleSender(outbox=settings.console_outbox, echo=settings.console_print)
    raise NotImplementedError("the Twilio sender arrives with the delivery issue")
