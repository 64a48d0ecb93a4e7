"""Verification texts: three languages, WebOTP line last, one SMS segment each."""

from __future__ import annotations

import pytest

from app.sms.templates import LANGUAGES, SUBJECT, language_for, render_code_message

GSM_SINGLE_SEGMENT = 160
UCS2_SINGLE_SEGMENT = 70


@pytest.mark.parametrize("kind", ["", SUBJECT])
@pytest.mark.parametrize("language", LANGUAGES)
def test_each_language_fits_one_segment_and_ends_with_webotp(language, kind):
    text = render_code_message(
        language=language,
        service="smsreg",
        code="1234567890",
        minutes=10,
        webotp_domain="coupon.example.co.jp",
        kind=kind,
    )
    assert text.splitlines()[-1] == "@coupon.example.co.jp #1234567890"
    limit = GSM_SINGLE_SEGMENT if text.isascii() else UCS2_SINGLE_SEGMENT
    assert len(text) <= limit, (language, len(text))


@pytest.mark.parametrize(
    ("locale", "region", "expected"),
    [
        ("ko", "JP", "ko"),
        ("ja-JP", "KR", "ja"),
        (None, "KR", "ko"),
        (None, "JP", "ja"),
        (None, "US", "en"),
        ("fr", "JP", "ja"),
    ],
)
def test_language_choice(locale, region, expected):
    assert language_for(locale, region) == expected


def test_templates_can_be_replaced(tmp_path):
    (tmp_path / "en.txt").write_text("Code {code} for {service}, {minutes} min")
    text = render_code_message(
        language="en",
        service="S",
        code="42",
        minutes=5,
        webotp_domain=None,
        directory=str(tmp_path),
    )
    assert text == "Code 42 for S, 5 min"
    (tmp_path / "subject").mkdir()
    (tmp_path / "subject" / "en.txt").write_text("Data page code {code}")
    mine = render_code_message(
        language="en", service="S", code="42", minutes=5, webotp_domain=None,
        directory=str(tmp_path), kind=SUBJECT,
    )  # fmt: skip
    assert mine == "Data page code 42"


@pytest.mark.parametrize("minutes", [1, 10])
def test_the_english_text_reads_right_for_any_lifetime(minutes):
    """ "It expires in 1 minutes" was sent with a code lifetime of a minute."""
    text = render_code_message(
        language="en", service="S", code="42", minutes=minutes, webotp_domain=None
    )
    assert text == f"Your S code is 42. Valid for {minutes} min."
