"""Korean numbers: served by default, read in the region a request names or its language
implies, and a number valid only in another served region is refused saying so."""

from __future__ import annotations

import pytest

from app.core.config import Settings
from app.core.errors import InvalidInput
from app.core.phone import parse_mobile, reading_region

SERVED = ["JP", "KR"]


def _region(country=None, locale=None):
    return reading_region(
        country=country, locale=locale, default_region="JP", allowed_regions=SERVED
    )


def test_korea_is_served_by_default():
    assert Settings().allowed_regions == ["JP", "KR"]


@pytest.mark.parametrize(
    ("country", "locale", "region"),
    [(None, None, "JP"), ("KR", None, "KR"), ("kr", "ja", "KR"), (None, "ko", "KR"),
     (None, "ko-KR", "KR"), (None, "ja", "JP"), (None, "en", "JP"), ("JP", "ko", "JP")],
)  # fmt: skip
def test_the_reading_region_comes_from_country_then_locale(country, locale, region):
    assert _region(country, locale) == region


def test_a_country_not_served_is_refused_naming_the_field():
    with pytest.raises(InvalidInput) as refused:
        _region("US")
    assert refused.value.errors[0].field == "country"


def test_a_korean_national_number_read_in_korea_is_korean():
    phone = parse_mobile(
        "010-2345-6789", default_region="JP", allowed_regions=SERVED, region=_region("KR")
    )
    assert (phone.e164, phone.region) == ("+821023456789", "KR")
    assert (
        parse_mobile(
            "010-2345-6789",
            default_region="JP",
            allowed_regions=SERVED,
            region=_region(locale="ko"),
        ).e164
        == "+821023456789"
    )


def test_a_number_valid_in_another_served_region_gets_an_error_saying_so():
    with pytest.raises(InvalidInput) as refused:
        parse_mobile("010-2345-6789", default_region="JP", allowed_regions=SERVED)
    problem = refused.value.errors[0]
    assert problem.field == "phone"
    assert "KR" in problem.detail and "country" in problem.detail
    # International format needs no country: its code already says which.
    assert (
        parse_mobile("+82 10-2345-6789", default_region="JP", allowed_regions=SERVED).region == "KR"
    )
    # And a Japanese number read in Korea is refused naming Japan.
    with pytest.raises(InvalidInput) as refused:
        parse_mobile("090-1234-5678", default_region="JP", allowed_regions=SERVED, region="KR")
    assert "JP" in refused.value.errors[0].detail


def test_no_other_region_is_suggested_for_a_number_that_would_dial_elsewhere_from_it():
    """``0081-...`` read in Korea dials out (001) to a Canadian number: valid, but no
    reason to tell the caller to send country KR, which would then be refused."""
    with pytest.raises(InvalidInput) as refused:
        parse_mobile("0081-90-5555-0001", default_region="JP", allowed_regions=SERVED)
    assert refused.value.errors[0].detail == "is not a valid phone number"
