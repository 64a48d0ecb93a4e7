"""Parsing, normalising and masking phone numbers with `phonenumbers`."""

from __future__ import annotations

import unicodedata
from collections.abc import Collection
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from app.core.errors import FieldProblem, InvalidInput
from app.core.text import ACCESS_CODE_DIGITS, MAX_DIGIT_RUN, digit_runs

MAX_INPUT_LENGTH = 32
_MOBILE = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}

# What a number may be written with besides digits (of any script) and spaces: dashes
# (also the long-vowel marks that Japanese input methods type for one, and the minus
# sign), dots, slashes, brackets and one plus sign before the digits; and the invisible
# marks a number copied from another app or a web page brings along: left-to-right
# marks, embeddings and isolates (a number reads left to right; a right-to-left one
# would show its groups in another order), zero-width spaces, a word joiner, a soft
# hyphen, a byte-order mark.
_PLUS = frozenset("+\uff0b")
_PUNCTUATION = _PLUS | frozenset(".\uff0e/\uff0f()\uff08\uff09[]\uff3b\uff3d\u30fc\u2212")
_COPIED_MARKS = frozenset("\u200b\u200e\u202a\u202c\u2060\u2066\u2068\u2069\u00ad\ufeff")
_WITHOUT_MARKS = dict.fromkeys(map(ord, _COPIED_MARKS))
WRITTEN_WITH = "digits, spaces, hyphens, dots, slashes, brackets and a leading +"


def _one_leading_plus(raw: str) -> bool:
    """At most one plus sign, and none after the first digit."""
    pluses = [i for i, character in enumerate(raw) if character in _PLUS]
    first_digit = next((i for i, character in enumerate(raw) if character.isdecimal()), len(raw))
    return len(pluses) <= 1 and all(i < first_digit for i in pluses)


def _written_as_number(char: str) -> bool:
    return char.isdecimal() or char in _PUNCTUATION or unicodedata.category(char) in ("Zs", "Pd")


class ValidElsewhere(InvalidInput):
    """A number that is not valid in the country it was read in, but is in another one
    served (``region``): the same refusal, which a page can word as a hint."""

    region: str = ""

    @classmethod
    def naming(cls, field: str, *, read_in: str, region: str) -> ValidElsewhere:
        """The refusal of ``field``, read in ``read_in``, valid in ``region``."""
        detail = (
            f"is not a valid number in {read_in}, but is one in {region}: "
            f"send country {region} (or the number in international format)"
        )
        problem = FieldProblem(location="body", field=field, detail=detail)
        refused = cls(f"{field}: {detail}", errors=[problem])
        refused.region = region
        return refused


@dataclass(frozen=True)
class Phone:
    """A valid mobile number, normalised."""

    e164: str
    region: str
    country_code: int
    national: str
    number: phonenumbers.PhoneNumber

    def prefix(self, digits: int) -> str:
        """Country code plus the first national digits: the unit of prefix limits."""
        return f"+{self.country_code}{self.national[:digits]}"

    def masked(self) -> str:
        """The number with all but the carrier prefix and the last 4 digits hidden."""
        return _masked(self.number)


# The region a national-format number is read in when a request names no country but
# its language implies one.
LANGUAGE_REGIONS = {"ja": "JP", "ko": "KR"}


def reading_region(
    *,
    country: str | None,
    locale: str | None,
    default_region: str,
    allowed_regions: Collection[str],
) -> str:
    """The region a national-format number is read in: the request's ``country``, else the
    one its ``locale`` implies (ko: KR), else the default; InvalidInput for a country this
    service does not serve."""
    if country is not None:
        if country.upper() not in allowed_regions:
            raise InvalidInput.field(
                "country", f"must be one of the regions served: {', '.join(allowed_regions)}"
            )
        return country.upper()
    implied = LANGUAGE_REGIONS.get((locale or "")[:2].lower())
    return implied if implied is not None and implied in allowed_regions else default_region


def parse_mobile(
    raw: str,
    *,
    default_region: str,
    allowed_regions: Collection[str],
    field: str = "phone",
    region: str | None = None,
) -> Phone:
    """Parse user input into a mobile number from an allowed region, or raise InvalidInput.

    A national-format number is read in ``region`` (else ``default_region``); one that is
    not valid there but is in another served region is refused with a message naming
    that region, so the caller can say which country it meant.
    """
    if len(raw) > MAX_INPUT_LENGTH:
        raise InvalidInput.field(field, f"must be at most {MAX_INPUT_LENGTH} characters")
    # The half-width long-vowel mark as the full-width one, which phonenumbers reads as
    # a dash.
    raw = raw.replace("\uff70", "\u30fc")
    if not raw.isascii():
        # The invisible marks a copied number brings along, wherever they stand: parsed,
        # they would end the number at the first one.
        raw = raw.translate(_WITHOUT_MARKS)
    read_in = region or default_region
    try:
        number = phonenumbers.parse(raw, read_in)
    except NumberParseException:
        raise InvalidInput.field(field, "is not a phone number") from None
    if number.extension:
        # An SMS reaches the line, not an extension; "... ext 1" would be kept and shown
        # as a different number for the same person.
        raise InvalidInput.field(field, "must not have an extension")
    if any(character.isalpha() and character not in _PUNCTUATION for character in raw):
        # phonenumbers reads letters as the digits of a phone keypad (090-CALL-5678 is
        # 090-2255-5678): a typo would send the code to somebody else's number.
        raise InvalidInput.field(field, "must be written in digits, not letters")
    if not all(_written_as_number(character) for character in raw) or not _one_leading_plus(raw):
        # phonenumbers skips what comes before the first digit and after the last
        # (``090-1234-5678!!!``, a NUL, a control character, a direction override, a
        # plus sign at the end) and reads ``++81`` as ``+81``.
        raise InvalidInput.field(field, f"may hold only {WRITTEN_WITH}")
    # number_type() is UNKNOWN exactly when is_valid_number() is False (both match the
    # number against its region's patterns, which is most of the parsing cost), so
    # the type is worked out once and answers both questions.
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.UNKNOWN:
        elsewhere = _valid_elsewhere(raw, read_in=read_in, allowed_regions=allowed_regions)
        if elsewhere:
            raise ValidElsewhere.naming(field, read_in=read_in, region=elsewhere)
        raise InvalidInput.field(field, "is not a valid phone number")
    region = phonenumbers.region_code_for_number(number) or ""
    if region not in allowed_regions:
        raise InvalidInput.field(field, "is from a region this service does not serve")
    if kind not in _MOBILE:
        raise InvalidInput.field(field, "is not a mobile number")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    country_code = number.country_code or 0
    national = e164[len(str(country_code)) + 1 :]
    return Phone(
        e164=e164, region=region, country_code=country_code, national=national, number=number
    )


def _valid_elsewhere(raw: str, *, read_in: str, allowed_regions: Collection[str]) -> str | None:
    """The first other served region in which a national-format ``raw`` is valid."""
    if raw.lstrip().startswith("+"):
        return None  # international: the country code already decided
    for other in allowed_regions:
        if other == read_in:
            continue
        try:
            candidate = phonenumbers.parse(raw, other)
        except NumberParseException:
            continue
        # Valid, and a number of that region: read in Korea, ``0081...`` dials out (001)
        # to a Canadian number, which is no reason to suggest Korea.
        if (
            phonenumbers.is_valid_number(candidate)
            and phonenumbers.region_code_for_number(candidate) == other
        ):
            return other
    return None


def mask(e164: str) -> str:
    """``+819012345678`` -> ``+81 90-****-5678``: country code, first 2 and last 4 digits shown."""
    return _masked(phonenumbers.parse(e164, None))


def _masked(number: phonenumbers.PhoneNumber) -> str:
    shown = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    country_digits = len(str(number.country_code))
    national_digits = sum(ch.isdigit() for ch in shown) - country_digits
    out = []
    seen = 0
    for ch in shown:
        if ch.isdigit():
            seen += 1
            position = seen - country_digits  # 1-based within the national number
            if 2 < position <= national_digits - 4:
                ch = "*"
        out.append(ch)
    return "".join(out)


def numbers_in(text: str, *, regions: Collection[str]) -> set[str]:
    """Every phone number (E.164) that ``text`` might hold, however it is written: what
    `phonenumbers` finds in it, and each stretch of 9 to 15 digits of every run of digits
    (full-width, kanji and separated ones too, app.core.text) read as a number of each
    region and as an international one. Stretches, not whole runs: a number may follow
    any international access code (``00``, ``010``, ``011``, ``0011``...) or other
    digits."""
    found: set[str] = set()
    for region in regions:
        for match in phonenumbers.PhoneNumberMatcher(text, region, phonenumbers.Leniency.POSSIBLE):
            found.add(phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164))
    runs = digit_runs(text)
    for run in (run for run in runs if len(run) > MAX_DIGIT_RUN):
        for start in range(len(run) - MAX_DIGIT_RUN):
            for end in range(start + MAX_DIGIT_RUN + 1, min(len(run), start + _E164_DIGITS) + 1):
                found |= _readings(run[start:end], regions)
    # Groups with anything between them: punctuation (``090/1234,5678``), letters, kana or
    # words (``080x3333x4444``, ``080 3333 and 4444``), whole groups to the end, from
    # their first digit or past an access code leading them (``0081-90/1234,5678``).
    # Each distinct stretch read once: ``1/1/1/...`` makes a thousand equal ones.
    stretches = {
        joined[start:]
        for joined in _joined_groups(runs, most=_E164_DIGITS + ACCESS_CODE_DIGITS)
        for start in range(min(ACCESS_CODE_DIGITS, len(joined) - MAX_DIGIT_RUN - 1) + 1)
        if len(joined) - start <= _E164_DIGITS
    }
    for stretch in sorted(stretches):
        found |= _readings(stretch, regions)
    return found


_E164_DIGITS = 15  # at most, country code included (ITU-T E.164)


def _joined_groups(runs: list[str], *, most: int) -> set[str]:
    """The digits of consecutive ``runs`` of digits of a text, whatever lay between them,
    up to ``most`` digits, from every run on."""
    found = set()
    for first in range(len(runs)):
        digits = ""
        for run in runs[first:]:
            digits += run
            if len(digits) > most:
                break
            found.add(digits)
    return found


def _readings(digits: str, regions: Collection[str]) -> set[str]:
    """``digits`` read as an international number and as a national one of each region:
    the possible ones, as E.164."""
    found = set()
    readings: list[tuple[str, str | None]] = [(digits, region) for region in regions]
    if not digits.startswith("0"):
        readings.append(("+" + digits, None))
    for candidate, read_as in readings:
        try:
            number = phonenumbers.parse(candidate, read_as)
        except NumberParseException:
            continue
        if phonenumbers.is_possible_number(number):
            found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return found
