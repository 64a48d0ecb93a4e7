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

Use :data:`NoPhoneNumber` on a schema field (``Annotated[str, ..., NoPhoneNumber]``):
the refusal is a 422 naming the field, and the message never repeats the input.
"""

from __future__ import annotations

import unicodedata

from pydantic import AfterValidator

MAX_DIGIT_RUN = 8
KANJI_DIGITS = {char: str(value) for value, char in enumerate("〇一二三四五六七八九")}
# Separators that may sit inside a written number; NFKC folds the full-width forms of
# these (．＿（）　) to the ASCII ones first.
_SEPARATORS = frozenset("_.()[]\u30fc\uff70\u2212")
NO_PHONE_NUMBER = "must not contain a phone number (9 or more digits, however written)"


def _separator(char: str) -> bool:
    return char in _SEPARATORS or char.isspace() or unicodedata.category(char) == "Pd"


def digit_runs(text: str, *, min_digits: int = 1) -> list[str]:
    """Every run of at least ``min_digits`` digits in ``text``, as ASCII digits, the
    separators between them dropped."""
    runs: list[str] = []
    run: list[str] = []
    for char in [*unicodedata.normalize("NFKC", text), "\x00"]:
        if char in KANJI_DIGITS:
            run.append(KANJI_DIGITS[char])
        elif (value := unicodedata.decimal(char, None)) is not None:
            run.append(str(value))
        elif not _separator(char):
            if len(run) >= min_digits:
                runs.append("".join(run))
            run = []
    return runs


def no_phone_number(text: str) -> str:
    """The text, if no run of 9 or more digits hides in it; else ValueError."""
    if digit_runs(text, min_digits=MAX_DIGIT_RUN + 1):
        raise ValueError(NO_PHONE_NUMBER)
    return text


def _unless_none(text: str | None) -> str | None:
    return None if text is None else no_phone_number(text)


NoPhoneNumber = AfterValidator(_unless_none)
