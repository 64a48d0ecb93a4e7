"""CSV cells that a spreadsheet will not run as formulas, and their exact inverse.

CSV writers put every text cell through :func:`cell`, so the rule is written once.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula
to Excel and LibreOffice (OWASP "CSV injection"), so it is written with a leading
``'``. A cell that itself starts with ``'`` gets one too, which keeps the rule
reversible: reading drops exactly one leading ``'``. Plain numbers such as
``+819012345678`` or ``-5`` are left alone; they are not formulas. Where a number must
stay text (the numbers of a disclosure package), :func:`text_cell` marks it the same way.
"""

from __future__ import annotations

import re

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")


def cell(value: str) -> str:
    """A value as written to a CSV cell."""
    if value.startswith(_TRIGGERS) and not _NUMBER.match(value):
        return "'" + value
    return value


def text_cell(value: str) -> str:
    """A value as written to a CSV cell that a spreadsheet keeps as text: a number (a phone
    number such as ``+819012345678`` would lose its ``+`` and leading zeros) gets the
    same leading ``'`` as a formula, so :func:`uncell` reads both back exactly."""
    if _NUMBER.match(value):
        return "'" + value
    return cell(value)


def uncell(text: str) -> str:
    """The value a CSV cell written by :func:`cell` holds."""
    return text[1:] if text.startswith("'") else text
