"""Inbound STOP: an SMS whose body is a stop word opts its sender out of coupon delivery.

A body matches when, trimmed and folded (Unicode NFKC, so full-width ``ＳＴＯＰ`` and
half-width katakana match too, characters drawn as nothing dropped, then case-folded),
it equals one of the configured stop words folded the same way. Neither the number nor
the body is ever logged.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence

import phonenumbers

from app.consent import service
from app.consent.schemas import CARRIER_SOURCE, SMS_SOURCE
from app.core.context import Context
from app.core.text import invisible
from app.core.tx import Tx
from app.models.subscriber import Subscriber
from app.purposes import Purpose
from app.registry import service as registry
from app.registry.service import SubscriberNotFound

# A STOP's source is SMS_SOURCE; one the carrier reported (the recipient's STOP reached
# only it), CARRIER_SOURCE.
ACTOR = "sms:twilio"
# What a STOP withdraws: consent to receive campaign messages.
PURPOSE = Purpose.COUPON_DELIVERY


def fold(text: str) -> str:
    """The form bodies and stop words are compared in: NFKC, without what is drawn as
    nothing (a zero-width space a phone's keyboard left), trimmed, case-folded."""
    shown = "".join(c for c in unicodedata.normalize("NFKC", text) if not invisible(c))
    return shown.strip().casefold()


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
    subscriber = await _registered(tx, ctx, sender)
    if subscriber is None:
        return False  # not ours: nothing is written
    try:
        await service.opt_out(
            tx, ctx, subscriber=subscriber, purpose=PURPOSE, source=SMS_SOURCE, actor=ACTOR
        )
    except SubscriberNotFound:
        return False  # erased since it was found: not ours any more
    return True


async def carrier_stop(tx: Tx, ctx: Context, number: str) -> bool:
    """Opt a registered number out of coupon delivery on the carrier's word that its
    recipient told it to stop (Twilio's error 21610: a STOP this service never saw, its
    inbound webhook not set up or down at the time); True when one was opted out.

    Only a standing opt-in is withdrawn: a number that keeps failing so writes its
    history once, and a subscriber who never opted in gets no opt-out they did not make."""
    subscriber = await _registered(tx, ctx, number)
    if subscriber is None:
        return False
    return await service.withdraw_opt_in(
        tx, ctx, subscriber=subscriber, purpose=PURPOSE, source=CARRIER_SOURCE, actor=ACTOR
    )


async def hold(tx: Tx, ctx: Context, number: str) -> None:
    """Take the lock of the subscriber a number is registered to, if any: for a caller
    that must lock other rows before it may opt the number out (a status report holds
    its message's row), so that it takes the locks in the order an erasure takes them,
    the subscriber's first."""
    subscriber = await _registered(tx, ctx, number)
    if subscriber is not None:
        await registry.lock_subscribers(tx, [subscriber.id])


async def _registered(tx: Tx, ctx: Context, number: str) -> Subscriber | None:
    e164 = _e164(number)
    if e164 is None:
        return None
    # Every index of the number, so a subscriber an index-key rotation has not
    # re-indexed yet is found too.
    subscriber_id = await registry.find_id(
        tx, phone_index=ctx.keys.blind_indexes(e164, kind="number")
    )
    return None if subscriber_id is None else await registry.get(tx, subscriber_id)
