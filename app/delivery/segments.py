"""How many SMS parts a text needs (3GPP TS 23.038 / 23.040), to bound campaign texts.

A text made only of the GSM 7-bit default alphabet takes 160 characters in one SMS
(characters of the extension table count twice), else 153 per part. Anything else is
sent as UCS-2: 70 UTF-16 code units in one SMS, else 67 per part. This is the count
carriers bill; a part boundary inside a surrogate pair is not adjusted for.
"""

from __future__ import annotations

import math
import unicodedata

from app.core.text import invisible

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")
_ALLOWED_FORMAT = frozenset("\u200d")  # zero-width joiner: emoji sequences


def segments(text: str) -> int:
    """The number of SMS parts ``text`` is sent as."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENSION for ch in text):
        units = len(text) + sum(ch in _GSM_EXTENSION for ch in text)
        return 1 if units <= 160 else math.ceil(units / 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def bad_character(text: str) -> str | None:
    """The first character a campaign text may not hold (controls other than a line
    break, invisible formatting such as bidi overrides, characters drawn as nothing such
    as a Hangul filler, unassigned or private code points), or None. A zero-width joiner
    is taken only between two characters it can join (an emoji sequence), not in runs."""
    for i, ch in enumerate(text):
        if ch == "\n":
            continue
        if ch in _ALLOWED_FORMAT and _joins(text, i):
            continue
        if unicodedata.category(ch)[0] == "C" or invisible(ch):
            return ch
    return None


def _joins(text: str, i: int) -> bool:
    """Whether the joiner at ``i`` stands between two characters that are not joiners
    or white space."""
    before, after = text[i - 1 : i], text[i + 1 : i + 2]
    return all(
        side and side not in _ALLOWED_FORMAT and not side.isspace() for side in (before, after)
    )
