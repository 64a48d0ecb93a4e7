"""Inbound STOP: an SMS whose body is a stop word opts its sender out of coupon delivery.

A body matches when, trimmed and folded (Unicode NFKC, so full-width ``ＳＴＯＰ`` and
half-width katakana match too, then case-folded), it equals one of the configured
stop words folded the same way. Neither the number nor the body is ever logged.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence

import phonenumbers

from app.consent import service
from app.core.context import Context
from app.core.tx import Tx
from app.purposes import Purpose
from app.registry import service as registry

SOURCE = "sms"
ACTOR = "sms:twilio"
# What a STOP withdraws: consent to receive campaign messages.
PURPOSE = Purpose.COUPON_DELIVERY


def fold(text: str) -> str:
    """The form bodies and stop words are compared in."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


@functools.lru_cache(maxsize=8)
def _folded(words: tuple[str, ...]) -> frozenset[str]:
    return frozenset(fold(word) for word in words)


def is_stop_word(body: str, words: Sequence[str]) -> bool:
    """Whether an SMS body asks to stop."""
    return fold(body) in _folded(tuple(words))


def _e164(sender: str) -> str | None:
    try:
        number = phonenumbers.parse(sender, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


async def handle_inbound(
    tx: Tx, ctx: Context, *, sender: str, body: str, twilio_stop: bool = False
) -> bool:
    """Opt the sender out of coupon delivery if the body is a stop word, or Twilio says
    it is one (``twilio_stop``: its Advanced Opt-Out read a keyword, perhaps one set in
    its console, and now blocks the number), and the number is registered; True when a
    subscriber was opted out."""
    if not twilio_stop and not is_stop_word(body, ctx.settings.stop_words):
        return False
    e164 = _e164(sender)
    if e164 is None:
        return False
    # Every index of the number, so a subscriber an index-key rotation has not
    # re-indexed yet is found too.
    subscriber_id = await registry.find_id(
        tx, phone_index=ctx.keys.blind_indexes(e164, kind="number")
    )
    subscriber = None if subscriber_id is None else await registry.get(tx, subscriber_id)
    if subscriber is None:
        return False  # not ours: nothing is written
    await service.change(
        tx,
        ctx,
        subscriber=subscriber,
        purpose=PURPOSE,
        action="opt_out",
        source=SOURCE,
        policy_version=None,
        locale=None,
        client_ip=None,
        actor=ACTOR,
    )
    return True
