"""The disclosure rules every part of the ledger shares: bases, items, limits, names.

- legal bases: ``consent``, ``law``, ``investigation_compelled``,
  ``emergency_life_body_property``; ``law`` and ``investigation_compelled`` need the
  request document's reference (a CCP Art. 197(2) inquiry or a warrant). Those two and
  ``emergency_life_body_property`` are APPI Art. 27(1)'s exceptions, which need no
  consent: they go on despite a subject's stop of third-party provision, and the
  request and its ledger entry name the subjects whose stop they overrode. ``consent``
  never overrides a stop;
- a package holds some of :data:`DATA_ITEMS`, in that order, for 1 to
  :data:`MAX_SUBJECTS` subjects named by subscriber id, never by number.
"""

from __future__ import annotations

import unicodedata
from typing import Literal, get_args

from app.core.text import no_controls as text_no_controls
from app.core.text import visible

LegalBasis = Literal["consent", "law", "investigation_compelled", "emergency_life_body_property"]
LEGAL_BASES: tuple[str, ...] = get_args(LegalBasis)
COMPELLED = frozenset({"law", "investigation_compelled"})
NEEDS_REFERENCE = COMPELLED
# APPI Art. 27(1) (i)-(iv): provision without consent, so without regard to a stop of it.
OVERRIDES_STOP = frozenset({*COMPELLED, "emergency_life_body_property"})

# What a package may hold, in the order its columns appear.
DataItem = Literal[
    "phone_number", "subscriber_id", "verified_purposes", "registered_at", "last_verified_at"
]
DATA_ITEMS: tuple[str, ...] = get_args(DataItem)
MAX_SUBJECTS = 1000

RequestStatus = Literal["requested", "approved", "rejected", "released"]
# How a subject asked (a stop, a consent): a short token such as `phone` or `web-form`.
SOURCE_PATTERN = r"^[A-Za-z0-9_.:\-]{1,40}$"
_ALLOWED_CONTROLS = frozenset({"\n", "\t"})


def recipient_key(organisation: str) -> str:
    """The recipient as consent and filters match it: NFKC, case-folded, spaces collapsed."""
    return " ".join(unicodedata.normalize("NFKC", organisation).casefold().split())


def no_controls(text: str) -> str:
    """The text, if it holds no control characters but newlines and tabs, and no invisible
    format characters (a zero-width space, a direction override: what the ledger keeps
    for years must read as it is); else ValueError."""
    try:  # what is part of a drawn character stays (an emoji sequence, a kanji's variant)
        return visible(text_no_controls(text, allowed=_ALLOWED_CONTROLS))
    except ValueError:
        raise ValueError("must not contain control or invisible format characters") from None
