"""Free text that never holds a phone number: reasons, notes, purposes.

What staff type into a reason or a note is kept for years (the access log, the audit
events, the append-only ledger), so it must never carry a number. A mobile number has
at least nine national digits (ten in Japan, eleven with the trunk 0), so any run of
nine or more digits is refused, read after the disguises people use:

- full-width and other Unicode decimal digits (``０９０``, ``٠٩٠``), every other
  character Unicode gives a digit value (circled and dingbat digits: ``⓿❶➀🄁``), the
  kanji digits ``〇零一二三四五六七八九``, the formal numerals of legal and financial
  documents (``壱弐参肆伍陸漆捌玖`` and their older forms, beside another digit written as a
  word: ``参照`` after a date is a word) and the Korean digit syllables
  ``영공일이삼사오육륙칠팔구`` count as digits (not a syllable right after a numeral with
  no digit after it: the unit of a date or a count, ``3일``, the 3rd);
- separators between digits do not break a run: white space of any width, hyphens and
  dashes of every width (``-‐‑‒–—―−－ー``), underscores, dots and parentheses (half and
  full width), and what shows nothing of its own: invisible format characters (a
  zero-width space, a soft hyphen, a word joiner, direction marks) and combining marks.

Any other punctuation mark or symbol between digit groups (``90/1234/5678``,
``090·1234·5678``, ``+81:90:1234:5678``, ``item 5, 090/1234/5678``) does not break a
run either where groups joined one after another by one and the same mark make a
Japanese or Korean mobile number (what the registry holds), nationally, with the country
code or after an international access code (``0081-90/1234/5678``); so a date and time
such as ``2026/01/05 10:12:34`` passes, a number written with slashes does not. Where
text must not hold a registered subscriber's number however written (a reveal's reason,
a disclosure's contact), it is also looked up: app.registry.free_text.refuse_registered_number.

Use :data:`NoPhoneNumber` on a schema field (``Annotated[str, ..., NoPhoneNumber]``):
the refusal is a 422 naming the field, and the message never repeats the input.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator

import phonenumbers
from pydantic import AfterValidator

MAX_DIGIT_RUN = 8
# Digits written as words, one character each: kanji (〇 and 零 for zero) and the
# Sino-Korean syllables a Korean number is read out in (영 or 공 for zero, 육 or 륙 for
# six). Nine of them in a row hardly occur in prose, and spell a number when they do.
KANJI_DIGITS = {
    **{char: str(value) for value, char in enumerate("〇一二三四五六七八九")},
    "零": "0",
}
# The formal numerals (大字) of contracts, cheques and police references, with their
# older forms. Several are everyday words too (参照, 参加, 陸上): one counts as a digit
# only beside another written as a word, a kanji or another formal numeral, never
# beside an Arabic numeral alone (``20241231参照`` is a date and a word).
FORMAL_DIGITS = {
    char: str(value)
    for value, chars in enumerate(
        ("", "壱壹弌", "弐貳貮弍", "参參弎", "肆", "伍", "陸", "漆", "捌", "玖")
    )
    for char in chars
}
HANGUL_DIGITS = {
    **{char: str(value) for value, char in enumerate("영일이삼사오육칠팔구")},
    "공": "0",
    "륙": "6",
}
# Separators that may sit inside a written number; NFKC folds the full-width forms of
# these (．＿（）　) to the ASCII ones first.
_SEPARATORS = frozenset("_.()[]\u30fc\uff70\u2212")
NO_PHONE_NUMBER = "must not contain a phone number (9 or more digits, however written)"
# A one-line name (a username as typed, an API key's name): no control characters, which
# PostgreSQL would refuse in text (a NUL) or a log line would carry (a newline).
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f-\x9f]+$"
# What free text kept for years may hold of the control characters: line breaks (as a
# browser's text area sends them) and tabs. A NUL in text is refused by PostgreSQL, and an
# escape sequence would reach whoever reads the text in a terminal.
LINE_CONTROLS = frozenset("\r\n\t")
NO_CONTROLS = "must not contain control characters (but line breaks and tabs)"


# Regions whose numbers digits joined by any punctuation are read as, and the most
# digits a number has (E.164, country code included).
_REGIONS = ("JP", "KR")
_MOBILE = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
_MAX_NUMBER_DIGITS = 15
ACCESS_CODE_DIGITS = 4  # the longest international access code (0011, 0010...)
# What a mobile number's digits look like before phonenumbers is asked (a cheap screen):
# Japan 070/080/090 (or without the 0), Korea 010, either after its country code.
_MOBILE_SHAPE = re.compile(r"(?:0?[789]0|010|810?[789]0|820?10)\d{7,9}$")


# Dashes; combining marks, drawn on the digit before them (and what :func:`invisible`
# names: format characters such as U+200B, U+00AD, U+2060, U+202A, and the rest).
_SEPARATOR_CATEGORIES = frozenset({"Pd", "Mn", "Me"})
# Unicode's Default_Ignorable_Code_Point characters that are not format characters (Cf):
# drawn as nothing, yet letters or unassigned (the Hangul fillers U+115F, U+1160, U+3164,
# U+FFA0, the Khmer inherent vowels, U+FFF0-U+FFF8...). DerivedCoreProperties.txt.
_IGNORABLE_RANGES = (
    (0x115F, 0x1160), (0x17B4, 0x17B5), (0x2065, 0x2065), (0x3164, 0x3164),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0xE0000, 0xE0FFF),
)  # fmt: skip


def invisible(char: str) -> bool:
    """Whether a character is drawn as nothing: a format character or another default
    ignorable one (a zero-width space, a direction mark, a Hangul filler)."""
    point = ord(char)
    return unicodedata.category(char) == "Cf" or any(
        low <= point <= high for low, high in _IGNORABLE_RANGES
    )


def _separator(char: str) -> bool:
    return (
        char in _SEPARATORS
        or char.isspace()
        or unicodedata.category(char) in _SEPARATOR_CATEGORIES
        or invisible(char)
    )


def _digit(char: str) -> str | None:
    """The ASCII digit a character (after NFKC) writes, whatever its script: a decimal
    digit, or another character with a digit value (``❶``, ``⓿``); kanji and Korean
    syllables are read by their tables."""
    value = unicodedata.decimal(char, None)
    if value is None:
        value = unicodedata.digit(char, None)
    return None if value is None else str(value)


# What a formal numeral must stand beside to count as a digit (see FORMAL_DIGITS).
_WORD_DIGITS = frozenset(KANJI_DIGITS) | frozenset(FORMAL_DIGITS)


def _formal_digits(chars: list[str]) -> set[int]:
    """Where a formal numeral is a digit: next to a kanji digit or another formal
    numeral (see FORMAL_DIGITS)."""
    return {
        i
        for i, char in enumerate(chars)
        if char in FORMAL_DIGITS
        and (
            (i > 0 and chars[i - 1] in _WORD_DIGITS)
            or (i + 1 < len(chars) and chars[i + 1] in _WORD_DIGITS)
        )
    }


def _spoken_digits(chars: list[str]) -> set[int]:
    """Where a Korean digit syllable is a digit: everywhere but right after a numeral
    with no digit right after it, the unit of a date or a count (3일, the 3rd; 10일 동안,
    for ten days)."""
    found: set[int] = set()
    for i, char in enumerate(chars):
        if char not in HANGUL_DIGITS:
            continue
        after_numeral = i > 0 and _digit(chars[i - 1]) is not None
        nxt = chars[i + 1] if i + 1 < len(chars) else ""
        digit_next = bool(nxt) and (
            nxt in HANGUL_DIGITS or nxt in KANJI_DIGITS or _digit(nxt) is not None
        )
        if not after_numeral or digit_next:
            found.add(i)
    return found


def digit_runs(text: str, *, min_digits: int = 1) -> list[str]:
    """Every run of at least ``min_digits`` digits in ``text``, as ASCII digits, the
    separators between them dropped."""
    return [
        "".join(groups)
        for groups, _ in _segments(text, merge=True)
        if len("".join(groups)) >= min_digits
    ]


def _segments(text: str, *, merge: bool = False) -> list[tuple[list[str], list[str]]]:
    """The digits of ``text`` as ASCII: groups of digits joined by the separators above,
    and the punctuation or symbol between one group and the next (without those
    separators around it). A letter, or with ``merge`` anything but those separators,
    ends a segment."""
    found: list[tuple[list[str], list[str]]] = []
    groups: list[str] = []
    joints: list[str] = []
    group: list[str] = []
    joint: list[str] = []
    chars = [*unicodedata.normalize("NFKC", text), "\x00"]
    spoken = _spoken_digits(chars)
    formal = _formal_digits(chars)
    for i, char in enumerate(chars):
        digit = (
            KANJI_DIGITS.get(char)
            or (FORMAL_DIGITS[char] if i in formal else None)
            or (HANGUL_DIGITS[char] if i in spoken else None)
        )
        if digit is None:
            digit = _digit(char)
        if digit is not None:
            if joint and group:
                groups.append("".join(group))
                group = []
            if groups and not group:
                joints.append("".join(joint))
            joint = []
            group.append(digit)
        elif _separator(char):
            continue
        elif not merge and char != "\x00" and unicodedata.category(char)[0] in "PSZ":
            joint.append(char)
        else:
            if group:
                groups.append("".join(group))
            if groups:
                found.append((groups, joints))
            groups, joints, group, joint = [], [], [], []
    return found


def joins(text: str, *, most: int = _MAX_NUMBER_DIGITS) -> Iterator[str]:
    """The digits of consecutive groups joined one after another by one and the same
    punctuation mark or symbol (``090/1234/5678``, not the ``01/05 10:12`` of a date and
    time), up to ``most`` digits, from every group on. Groups with anything else between
    them are read only where a match is exact, a registered subscriber's number
    (app.core.phone.numbers_in): as a heuristic they refused ordinary text, such as a date
    and an amount, as a number."""
    for groups, marks in _segments(text):
        for first in range(len(groups)):
            digits, mark = groups[first], ""
            for group, joint in zip(groups[first + 1 :], marks[first:], strict=False):
                if len(joint) != 1 or mark not in ("", joint):
                    break
                digits, mark = digits + group, joint
                if len(digits) > most:
                    break
                yield digits


def _hidden_number(text: str) -> bool:
    """Whether digit groups joined by punctuation (see :func:`joins`) make a Japanese or
    Korean mobile number (``5, 090/1234/5678`` holds one in its last three groups;
    ``2026/01/05 10:12:34`` holds none)."""
    return any(
        _MOBILE_SHAPE.match(tail) and _dialable(tail)
        for digits in joins(text, most=_MAX_NUMBER_DIGITS + ACCESS_CODE_DIGITS)
        for tail in _past_access_code(digits)
    )


def _past_access_code(digits: str) -> Iterator[str]:
    """``digits``, and what follows an international access code that may lead them
    (``0081`` in ``0081-90/1234/5678``): the country code 81 or 82 after a 0 and at most
    three more digits."""
    yield digits
    if digits.startswith("0"):
        for start in range(1, ACCESS_CODE_DIGITS + 1):
            if digits.startswith(("81", "82"), start):
                yield digits[start:]


@functools.lru_cache(maxsize=4096)
def _dialable(digits: str) -> bool:
    """Whether ``digits`` are a Japanese or Korean mobile number (what the registry
    holds), nationally or with the country code."""
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


NO_INVISIBLE = "must not contain invisible characters (zero-width, direction marks, fillers)"


# Drawn as nothing, yet part of what a character shows: a zero-width joiner between two
# emoji (a family, a rainbow flag), a variation selector after its base (an emoji's
# presentation; a kanji's variant form, as names are written: 葛󠄀), and the tag
# characters of a flag's tag sequence (England's, after U+1F3F4).
_JOINER = "\u200d"
_VARIATION_SELECTORS = ((0xFE00, 0xFE0F), (0xE0100, 0xE01EF))
_TAGS = (0xE0020, 0xE007F)
_TAG_BASE = "\U0001f3f4"


def _variation(char: str) -> bool:
    return any(low <= ord(char) <= high for low, high in _VARIATION_SELECTORS)


def _tag(char: str) -> bool:
    return _TAGS[0] <= ord(char) <= _TAGS[1]


def _varies(base: str, selector: str) -> bool:
    """Whether ``selector`` chooses a form of ``base``: an emoji's presentation after a
    pictograph or a keycap's digit, a variant form after a kanji; never after a letter,
    where it would make a second name that looks like the first."""
    if selector in "\ufe0e\ufe0f":
        return _emoji(base) or base in "#*" or unicodedata.category(base) == "Nd"
    return unicodedata.name(base, "").startswith("CJK")


def _emoji(char: str) -> bool:
    """A pictograph or an emoji modifier (a skin tone): what a joiner joins."""
    return unicodedata.category(char) in ("So", "Sk")


def visible(text: str) -> str:
    """The text, if every character in it is drawn (see :func:`invisible`) or is part of
    one that is (above); else ValueError. What staff read later (a key's name, a reason)
    reads as it was typed: a direction override, a zero-width space, or a joiner between
    two letters (``ad\u200dmin``, which looks like ``admin``) cannot disguise it."""
    for i, char in enumerate(text):
        hidden = invisible(char) or _variation(char) or _tag(char)
        if not hidden:
            continue
        before = text[i - 1] if i else ""
        if _variation(char) and before and _varies(before, char):
            continue
        if _tag(char) and before and (before == _TAG_BASE or _tag(before)):
            continue
        if char == _JOINER and i + 1 < len(text) and _emoji(text[i + 1]):
            base = text[i - 2] if before and _variation(before) and i > 1 else before
            if base and _emoji(base):
                continue
        raise ValueError(NO_INVISIBLE)
    return text


def no_controls(text: str, *, allowed: frozenset[str] = LINE_CONTROLS) -> str:
    """The text, if it holds no control character (nor a lone surrogate) but ``allowed``;
    else ValueError."""
    for char in text:
        if char not in allowed and unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError(NO_CONTROLS)
    return text


def _unless_none(text: str | None) -> str | None:
    return None if text is None else visible(no_phone_number(no_controls(text)))


# Free text: no number hides in it, no control character but line breaks and tabs, and
# nothing in it is drawn as nothing.
NoPhoneNumber = AfterValidator(_unless_none)
Visible = AfterValidator(visible)
