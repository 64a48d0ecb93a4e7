"""Masking reuses each number range's grouping; it must match phonenumbers' own format."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from app.core.errors import InvalidInput
from app.verification.phone import _mask_digits, parse_mobile

REGIONS = {"JP": ("90", "80", "70"), "KR": ("10",), "US": ("415", "646"), "DE": ("151", "176")}


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_the_remembered_grouping_matches_a_fresh_format(region):
    rng = random.Random(region)
    length = len(
        str(
            phonenumbers.example_number_for_type(
                region, phonenumbers.PhoneNumberType.MOBILE
            ).national_number
        )
    )
    code = phonenumbers.country_code_for_region(region)
    checked = 0
    for _ in range(500):
        lead = rng.choice(REGIONS[region])
        national = lead + "".join(rng.choice("0123456789") for _ in range(length - len(lead)))
        try:
            phone = parse_mobile(
                f"+{code}{national}", default_region=region, allowed_regions=[region]
            )
        except InvalidInput:  # not a valid mobile: nothing to compare
            continue
        fresh = phonenumbers.format_number(
            phone.number, phonenumbers.PhoneNumberFormat.INTERNATIONAL
        )
        assert phone.masked() == _mask_digits(fresh, len(str(code)))
        checked += 1
    assert checked > 100


def test_a_japanese_number_is_masked_as_the_api_promises():
    phone = parse_mobile("090-1234-5678", default_region="JP", allowed_regions=["JP"])
    assert phone.masked() == "+81 90-****-5678"
    assert phone.masked() == "+81 90-****-5678"  # the second time from the remembered grouping
