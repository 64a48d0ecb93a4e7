"""Text that staff type and the service keeps for years (a reveal's reason, a subject
request's, a disclosure's contact, a closing note) holds no phone number: a subject is
named by id only."""

from __future__ import annotations

import functools

import anyio.to_thread
import phonenumbers
from phonenumbers import Leniency

from app.core.context import Context
from app.core.errors import InvalidInput
from app.core.phone import numbers_in
from app.core.text import digit_runs
from app.core.tx import Tx
from app.registry import repository as repo
from app.registry.access_log import log_search
from app.registry.schemas import clean_reason
from app.staff.auth import Staff


async def check_reason(
    tx: Tx,
    ctx: Context,
    text: str,
    *,
    field: str = "reason",
    staff: Staff | None = None,
    ip: str = "",
) -> str:
    """A reason kept for years (a reveal's, a subject request's, or the note closing one),
    cleaned: 10 to 500 printable characters, no phone number of a region served, and no
    registered subscriber's number however written (:func:`refuse_registered_number`),
    else InvalidInput on ``field``. The message never repeats the input."""
    try:
        cleaned = clean_reason(text)
    except ValueError as exc:
        raise InvalidInput.field(field, str(exc)) from None
    for region in _regions_served(ctx):
        for _match in phonenumbers.PhoneNumberMatcher(cleaned, region, leniency=Leniency.VALID):
            raise InvalidInput.field(
                field, "must not contain a phone number (the access log never holds one)"
            )
    await refuse_registered_number(tx, ctx, field=field, text=cleaned, staff=staff, ip=ip)
    return cleaned


class NumberInText(InvalidInput):
    """A subscriber's number typed into a staff member's text: refused, and the lookup
    it was is kept in the access log (the refusal commits that row)."""

    commit = True


async def refuse_registered_number(
    tx: Tx,
    ctx: Context,
    *,
    field: str,
    text: str | None,
    staff: Staff | None = None,
    ip: str = "",
) -> None:
    """InvalidInput on ``field`` if ``text`` holds a registered subscriber's number,
    however written: records kept for years (the access log, the ledger, the request
    register) name a subject by id only. Read as a number of every region served (full-
    width, kanji and separated digits too, groups joined by any marks), and looked up
    under every index key in the ring, so neither a foreign number nor one not yet
    re-indexed slips through. Exact, so an ordinary date or amount never trips it.

    The refusal tells whoever typed the text that the number is registered: given the
    ``staff`` member (by a caller that has written nothing yet), it is a search by number
    as any other, kept in the access log with the subscriber found."""
    found = await _subscriber_in(tx, ctx, field=field, text=text)
    if found is None:
        return
    detail = "must not contain a subscriber's phone number; name subjects by id"
    if staff is None:
        raise InvalidInput.field(field, detail)
    reason = f"a subscriber's number typed in {field}"
    await log_search(
        tx, ctx, staff=staff, ip=ip, found=found, reason=reason, details={"field": field}
    )
    raise NumberInText.field(field, detail)


async def _subscriber_in(tx: Tx, ctx: Context, *, field: str, text: str | None) -> str | None:
    """The id of a subscriber whose number ``text`` holds (see refuse_registered_number)."""
    if not text:
        return None
    if any(len(run) > _LONGEST_RUN for run in digit_runs(text)):
        # Each stretch of a run is read as a number: a very long run would hold the event
        # loop, and no contact, reference or reason needs one.
        raise InvalidInput.field(field, f"holds a run of more than {_LONGEST_RUN} digits")
    regions = _regions_served(ctx)
    # Off the event loop: a long text of many short digit groups takes a good part of a
    # second to read every way, which would hold every other request of the process.
    found = await anyio.to_thread.run_sync(functools.partial(numbers_in, text, regions=regions))
    indexes = [i for e164 in sorted(found) for i in ctx.keys.blind_indexes(e164, kind="number")]
    for start in range(0, len(indexes), _LOOKUP):  # a few statement shapes, however long
        if found_id := await repo.find_id(tx, phone_index=indexes[start : start + _LOOKUP]):
            return found_id
    return None


def _regions_served(ctx: Context) -> list[str]:
    """The regions whose numbers text is read for: the default first, each once."""
    s = ctx.settings
    return list(dict.fromkeys([s.default_region, *s.allowed_regions]))


_LOOKUP = 64  # indexes looked up in one statement
_LONGEST_RUN = 30  # digits in a row free text may hold
