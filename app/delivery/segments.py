"""How many SMS parts a text needs (3GPP TS 23.038 / 23.040), to bound campaign texts.

A text made only of the GSM 7-bit default alphabet takes 160 characters in one SMS
(characters of the extension table count twice), else 153 per part. Anything else is
sent as UCS-2: 70 UTF-16 code units in one SMS, else 67 per part. This is the count
carriers bill; a part boundary inside a surrogate pair is not adjusted for.
"""

from __future__ import annotations

import math
import unicodedata

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
    break, invisible formatting such as bidi overrides, unassigned or private code
    points), or None."""
    for ch in text:
        if ch == "\n" or ch in _ALLOWED_FORMAT:
            continue
        if unicodedata.category(ch)[0] == "C":
            return ch
    return None
