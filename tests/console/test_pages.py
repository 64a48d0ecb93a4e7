"""The console's pages as a whole: both languages name every word the templates use,
and no template holds an inline script or style."""

from __future__ import annotations

import re

from app.console import i18n
from app.console.web import HERE
from tests.console.helpers import get, signed_in

TEMPLATES = sorted((HERE / "templates").glob("*.html"))


def test_both_languages_have_the_same_words():
    english, japanese = (set(i18n.CATALOGUE[lang]) for lang in i18n.LANGUAGES)
    assert english == japanese


def test_every_word_a_template_uses_is_in_the_catalogue():
    used: set[str] = set()
    for template in TEMPLATES:
        used |= set(re.findall(r"""\bt\(["']([a-z_]+)["']\)""", template.read_text()))
    missing = sorted(used - set(i18n.CATALOGUE["en"]))
    assert not missing, missing


def test_no_template_has_an_inline_script_handler_or_style():
    for template in TEMPLATES:
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert not re.search(r"\son[a-z]+\s*=", text), template.name
        assert "style=" not in text and "<style" not in text, template.name


def test_the_language_is_the_switch_then_accept_language_then_english():
    assert i18n.choose(cookie="ja", accept_language="en") == "ja"
    assert i18n.choose(cookie=None, accept_language="fr, ja-JP;q=0.8, en;q=0.5") == "ja"
    assert i18n.choose(cookie="xx", accept_language="fr") == "en"


def _problem_types() -> set[str]:
    import app.cli  # noqa: F401 (imports every area, and with it every refusal)
    from app.core.errors import AppError

    found: set[str] = set()
    pending = [AppError]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("app."):  # not a test's own
                found.add(sub.slug)
            pending.append(sub)
    return found


def test_every_refusal_has_a_japanese_title():
    slugs = _problem_types()
    assert sorted(slugs - set(i18n.PROBLEM_TITLES["ja"])) == []
    assert sorted(set(i18n.PROBLEM_TITLES["ja"]) - slugs) == []  # none stale


async def test_a_refusal_page_is_titled_in_the_pages_language(app, client):
    admin = await signed_in(app, "admin", "root")
    admin.cookies.set(i18n.LANG_COOKIE, "ja")
    refused = await get(admin, "/console/ledger/verify")  # auditors' and officers' only
    assert refused.status_code == 403
    assert i18n.PROBLEM_TITLES["ja"]["forbidden"] in refused.text
    assert "Not allowed for these credentials" not in refused.text
