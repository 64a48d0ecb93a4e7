"""Choose the SMS sender from settings."""

from __future__ import annotations

from app.core.config import ConfigError, Settings
from app.sms.base import SmsSender
from app.sms.console import ConsoleSender


def build_sender(settings: Settings) -> SmsSender:
    """The configured sender."""
    if settings.sms_sender == "console":
        return ConsoleSender(outbox=settings.console_outbox, echo=settings.console_print)
    return _twilio(settings)


def _twilio(settings: Settings) -> SmsSender:
    # Imported here so development on the console sender never loads the Twilio client.
    from app.sms.callbacks import PATH
    from app.sms.twilio import RedirectingHttpClient, TwilioSender

    if settings.twilio_account_sid is None or settings.twilio_auth_token is None:
        raise ConfigError("SMSREG_TWILIO_ACCOUNT_SID and SMSREG_TWILIO_AUTH_TOKEN are required")
    # Without a public base URL, Twilio uses the Messaging Service's own callback URL.
    callback = settings.public_base_url.rstrip("/") + PATH if settings.public_base_url else None
    try:
        http_client = (
            RedirectingHttpClient(
                settings.twilio_api_base_url, timeout=settings.twilio_timeout_seconds
            )
            if settings.twilio_api_base_url
            else None
        )
        return TwilioSender(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            messaging_service_sid=settings.twilio_messaging_service_sid,
            from_number=settings.twilio_from_number,
            campaign_messaging_service_sid=settings.twilio_campaign_messaging_service_sid,
            status_callback=callback,
            http_client=http_client,
            timeout=settings.twilio_timeout_seconds,
            connections=settings.outbox_concurrency,
        )
    except ValueError as exc:  # its messages name the setting, never the value
        raise ConfigError(f"SMSREG_TWILIO_*: {exc}") from None
