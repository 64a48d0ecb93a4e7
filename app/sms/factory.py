"""Choose the SMS sender from settings."""

from __future__ import annotations

from app.core.config import ConfigError, Settings
from app.sms.base import SmsSender
from app.sms.console import ConsoleSender


def build_sender(settings: Settings) -> SmsSender:
    """The configured sender."""
    if settings.sms_sender == "console":
        return ConsoleSender(outbox=settings.console_outbox, echo=settings.console_print)
    raise ConfigError("SMSREG_SMS_SENDER=twilio: the Twilio sender is not built yet (issue 3)")
