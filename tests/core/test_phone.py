"""Reading a number as people write it; one masking rule, for a parsed number and for a
stored one alike."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from app.core.errors import InvalidInput
from app.core.phone import mask, parse_mobile

REGIONS = {"JP": ("90", "80", "70"), "KR": ("10",), "US": ("415", "646"), "DE": ("151", "176")}


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_masking_shows_the_country_the_first_two_and_the_last_four_digits(region):
    rng = random.Random(region)
    length = len(
        str(
            phonenumbers.example_number_for_type(
                region, phonenumbers.PhoneNumberType.MOBILE
            ).national_number
        )
    )
    code = str(phonenumbers.country_code_for_region(region))
    checked = 0
    for _ in range(300):
        lead = rng.choice(REGIONS[region])
        national = lead + "".join(rng.choice("0123456789") for _ in range(length - len(lead)))
        try:
            phone = parse_mobile(
                f"+{code}{national}", default_region=region, allowed_regions=[region]
            )
        except InvalidInput:  # not a valid mobile: nothing to compare
            continue
        shown = phone.masked()
        assert shown == mask(phone.e164)
        digits = [ch for ch in shown if ch.isdigit() or ch == "*"]
        hidden = "".join(digits)[len(code) :]
        assert hidden[:2] == phone.national[:2]
        assert hidden[-4:] == phone.national[-4:]
        assert set(hidden[2:-4]) <= {"*"}
        checked += 1
    assert checked > 50


def test_a_japanese_number_is_masked_as_the_api_promises():
    phone = parse_mobile("090-1234-5678", default_region="JP", allowed_regions=["JP"])
    assert phone.masked() == "+81 90-****-5678"
    assert mask("+819012345678") == "+81 90-****-5678"


@pytest.mark.parametrize(
    "raw",
    [
        "090-1234-5678",
        "(090) 1234.5678",
        "090/1234/5678",
        "０９０－１２３４－５６７８",  # full-width
        "＋８１ ９０ １２３４ ５６７８",
        "090ー1234ー5678",  # the long-vowel mark a Japanese input method types for a dash
        "090ｰ1234ｰ5678",  # its half-width form
        "090−1234−5678",  # minus signs
        "090‐1234‐5678",  # Unicode hyphens
        "090\u30001234\u30005678",  # ideographic spaces
        "\u202a+81 90-1234-5678\u202c",  # as copied from a messaging app
        # The invisible marks copied along, between the groups too (they were refused
        # there as "not a phone number"): each mark the docs list.
        *[
            f"090{mark}-1234{mark}-5678"
            for mark in "\u200b\u200e\u202a\u202c\u2060\u2066\u2068\u2069\u00ad\ufeff"
        ],
        "090\u2066-1234\u2069-5678",
        "٠٩٠١٢٣٤٥٦٧٨",  # Arabic-Indic digits
    ],
)
def test_a_number_written_with_digits_and_separators_is_read(raw):
    assert parse_mobile(raw, default_region="JP", allowed_regions=["JP"]).e164 == "+819012345678"


@pytest.mark.parametrize(
    "raw",
    [
        "090-1234-5678!!!",
        "090-1234-5678\x00",
        "\x07090-1234-5678",
        "090-1234-5678\t",
        "090-1234-5678\u202e",  # a direction override: shown otherwise than it reads
        "*090-1234-5678",
        "090-1234-5678?",
        "09012345678+",  # a plus sign only before the digits, and only one
        "++819012345678",
        "+81 90+1234+5678",
        "\u202b090 1234 5678\u202c",  # a right-to-left embedding: its groups shown reversed
        "\u200f090-1234-5678",
    ],
)
def test_anything_else_around_the_digits_is_refused_naming_the_field(raw):
    # phonenumbers skips it before the first digit and after the last.
    with pytest.raises(InvalidInput) as refused:
        parse_mobile(raw, default_region="JP", allowed_regions=["JP"])
    assert refused.value.errors[0].field == "phone"
