"""The console's words in English and Japanese: a small message catalogue.

The language is the ``smsreg_lang`` cookie (the switch in every page's header) or else
the first of English or Japanese in Accept-Language; English when neither is named.
A key missing from a language falls back to English, then to the key itself. A
refusal's title is translated by its problem type; its detail (which may name a value,
a time, a field) stays as the service wrote it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

LANGUAGES = ("en", "ja")
LANG_COOKIE = "smsreg_lang"

MESSAGES = Path(__file__).parent / "messages"
# One JSON file per language (app/console/messages/<lang>.json), the same keys in each.
CATALOGUE: dict[str, dict[str, str]] = {
    lang: json.loads((MESSAGES / f"{lang}.json").read_text(encoding="utf-8")) for lang in LANGUAGES
}


# A refusal's title by its problem type, in the languages other than English (whose
# titles are the problems' own): app/console/messages/problems.<lang>.json.
PROBLEM_TITLES: dict[str, dict[str, str]] = {
    lang: json.loads((MESSAGES / f"problems.{lang}.json").read_text(encoding="utf-8"))
    for lang in LANGUAGES
    if lang != "en"
}


def problem_title(lang: str, slug: str, english: str) -> str:
    """A refusal's title in ``lang``: its translation by problem type, else its own."""
    return PROBLEM_TITLES.get(lang, {}).get(slug) or english


def choose(*, cookie: str | None, accept_language: str) -> str:
    """The language of a request: the switch's cookie, else Accept-Language, else en."""
    if cookie in LANGUAGES:
        return cookie
    for part in accept_language.split(","):
        tag = part.split(";")[0].strip().lower()
        primary = tag.split("-")[0]
        if primary in LANGUAGES:
            return primary
    return "en"


def translator(lang: str) -> Callable[[str], str]:
    """``t(key)``: the key's text in ``lang``, falling back to English."""
    words = CATALOGUE.get(lang, CATALOGUE["en"])
    english = CATALOGUE["en"]

    def t(key: str) -> str:
        return words.get(key) or english.get(key) or key

    return t
