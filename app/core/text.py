"""Free text that never holds a phone number: reasons, notes, purposes.

What staff type into a reason or a note is kept for years (the access log, the audit
events, the append-only ledger), so it must never carry a number. A mobile number has
at least nine national digits (ten in Japan, eleven with the trunk 0), so any run of
nine or more digits is refused, read after the disguises people use:

- full-width and other Unicode decimal digits (``０９０``, ``٠٩٠``) and the kanji
  digits ``〇一二三四五六七八九`` count as digits;
- separators between digits do not break a run: white space of any width, hyphens and
  dashes of every width (``-‐‑‒–—―−－ー``), underscores, dots and parentheses (half and
  full width).

Any other punctuation or symbol between digits (``90/1234/5678``, ``090·1234·5678``,
``+81:90:1234:5678``, ``item 5, 090/1234/5678``) does not break a run either when some
of the digit groups it joins, one after another, make a Japanese or Korean mobile
number (what the registry holds), written as people write one (``0...``, ``90...``,
``81...``); so a date and time such as ``2026/12/05 10:30`` passes, a number written
with slashes does not.

Use :data:`NoPhoneNumber` on a schema field (``Annotated[str, ..., NoPhoneNumber]``):
the refusal is a 422 naming the field, and the message never repeats the input.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import phonenumbers
from pydantic import AfterValidator

MAX_DIGIT_RUN = 8
KANJI_DIGITS = {char: str(value) for value, char in enumerate("〇一二三四五六七八九")}
# Separators that may sit inside a written number; NFKC folds the full-width forms of
# these (．＿（）　) to the ASCII ones first.
_SEPARATORS = frozenset("_.()[]\u30fc\uff70\u2212")
NO_PHONE_NUMBER = "must not contain a phone number (9 or more digits, however written)"


# Regions whose numbers digits joined by any punctuation are read as, and the most
# digits a number has (E.164, country code included).
_REGIONS = ("JP", "KR")
_MOBILE = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
_MAX_NUMBER_DIGITS = 15
_WRITTEN = ("0", "70", "80", "90", "81", "82")


def _separator(char: str) -> bool:
    return char in _SEPARATORS or char.isspace() or unicodedata.category(char) == "Pd"


def digit_runs(text: str, *, min_digits: int = 1) -> list[str]:
    """Every run of at least ``min_digits`` digits in ``text``, as ASCII digits, the
    separators between them dropped."""
    return [
        "".join(groups)
        for groups in _groups(text, joins=_separator)
        if len("".join(groups)) >= min_digits
    ]


def _groups(text: str, *, joins: Callable[[str], bool]) -> list[list[str]]:
    """The digits of ``text`` as ASCII, in groups: a character ``joins`` says may sit
    inside a number ends a group, anything else ends the list of groups too."""
    found: list[list[str]] = []
    groups: list[str] = []
    group: list[str] = []
    for char in [*unicodedata.normalize("NFKC", text), "\x00"]:
        if char in KANJI_DIGITS:
            group.append(KANJI_DIGITS[char])
            continue
        if (value := unicodedata.decimal(char, None)) is not None:
            group.append(str(value))
            continue
        if group:
            groups.append("".join(group))
            group = []
        if not joins(char) and groups:
            found.append(groups)
            groups = []
    return found


def _any_separator(char: str) -> bool:
    """Punctuation, a symbol or a space of any kind: what may join a disguised number."""
    return char != "\x00" and unicodedata.category(char)[0] in "PSZ"


def _hidden_number(text: str) -> bool:
    """Whether consecutive digit groups joined by any punctuation make a Japanese or
    Korean number (``5, 090/1234/5678`` holds one in its last three groups)."""
    for groups in _groups(text, joins=_any_separator):
        for first in range(len(groups)):
            digits = ""
            for group in groups[first:]:
                digits += group
                if len(digits) > _MAX_NUMBER_DIGITS:
                    break
                if len(digits) > MAX_DIGIT_RUN and _dialable(digits):
                    return True
    return False


def _dialable(digits: str) -> bool:
    """Whether ``digits`` are a Japanese or Korean mobile number (what the registry
    holds) as people write one: nationally (``0...``; in Japan also without the 0,
    ``90...``) or with the country code (``81...``, ``82...``)."""
    if not digits.startswith(_WRITTEN):
        return False  # a date, a case number: not read as a number at all
    for raw, region in [(digits, region) for region in _REGIONS] + [("+" + digits, None)]:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.region_code_for_number(number) in _REGIONS and (
            phonenumbers.number_type(number) in _MOBILE
        ):
            return True
    return False


def no_phone_number(text: str) -> str:
    """The text, if no phone number hides in it (see the module); else ValueError."""
    if digit_runs(text, min_digits=MAX_DIGIT_RUN + 1) or _hidden_number(text):
        raise ValueError(NO_PHONE_NUMBER)
    return text


def _unless_none(text: str | None) -> str | None:
    return None if text is None else no_phone_number(text)


NoPhoneNumber = AfterValidator(_unless_none)
