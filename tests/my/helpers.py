"""Reading the /my/ pages' forms as a browser would fill them in."""

from __future__ import annotations

import re


def csrf_of(html: str) -> str:
    """The CSRF field of a page's form."""
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no CSRF field in the form"
    return found.group(1)


def field_of(html: str, name: str) -> str:
    """The value of a hidden or filled-in field of a page's form."""
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field"
    return found.group(1)


def text_of(html: str) -> str:
    """A page's words as a person reads them: its markup (a span that keeps a date on one
    line) left out, each element's words on a line of their own."""
    return re.sub(r"<[^>]*>", "", re.sub(r"</(?:li|p|dd|dt)>", "\n", html))
