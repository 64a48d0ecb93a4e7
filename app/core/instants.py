"""A point in time as API input: RFC 3339 text with an offset, and nothing else.

pydantic's own datetime also reads a number as Unix seconds (``until=0.5`` is then
1970-01-01T00:00:00.5Z) and a date without an offset as local time; a filter that
silently means something else than the caller typed is worse than a refusal.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator

# RFC 3339 section 5.6 (date-time); the calendar itself is checked by parsing.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
EXAMPLE = "2026-12-01T00:00:00Z"


def parse_instant(value: Any) -> Any:
    """RFC 3339 text as an aware UTC datetime; a datetime passes (callers in Python)."""
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(f"must be an RFC 3339 date-time with an offset, e.g. {EXAMPLE}")
    try:
        # fromisoformat wants the upper-case T and Z that RFC 3339 leaves optional.
        return dt.datetime.fromisoformat(value.upper()).astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise ValueError("is not a date-time that exists") from None


# An aware datetime read strictly: use it for every timestamp a caller sends.
Instant = Annotated[AwareDatetime, BeforeValidator(parse_instant)]
