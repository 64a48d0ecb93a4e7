"""Verification SMS texts in Japanese, Korean and English, ending in the WebOTP line."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

LANGUAGES = ("ja", "ko", "en")
_BY_REGION = {"JP": "ja", "KR": "ko"}


def language_for(locale: str | None, region: str = "") -> str:
    """The request's language if we have it, else the number's country's, else English."""
    if locale:
        language = locale.split("-")[0].lower()
        if language in LANGUAGES:
            return language
    return _BY_REGION.get(region, "en")


# The texts of a data subject's own code (signing in to /my/ or the subject API, or
# proving a new number): other words than a coupon code's, so the person can tell which
# page asked for it (app/sms/templates/subject/).
SUBJECT = "subject"


@lru_cache(maxsize=16)
def _template(language: str, directory: str | None, kind: str = "") -> str:
    name = f"{kind}/{language}.txt" if kind else f"{language}.txt"
    if directory is not None:
        path = Path(directory) / name
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
    return resources.files("app.sms").joinpath(f"templates/{name}").read_text("utf-8").strip()


def render_code_message(
    *,
    language: str,
    service: str,
    code: str,
    minutes: int,
    webotp_domain: str | None,
    directory: str | None = None,
    kind: str = "",
) -> str:
    """The SMS body (``kind``: ``""`` for a coupon code, :data:`SUBJECT` for a data
    subject's own). The WebOTP line (``@domain #code``) must be last for browsers to use it."""
    text = _template(language, directory, kind).format(service=service, code=code, minutes=minutes)
    if webotp_domain:
        text = f"{text}\n@{webotp_domain} #{code}"
    return text
