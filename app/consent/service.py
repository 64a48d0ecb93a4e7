"""Consent to coupon delivery: opt-in and opt-out with their proof, the history, and who
is live.

Every change appends a history row (time, action, source, policy version, client IP,
actor) and makes it the current state, in one transaction. An opt-out takes effect
when it commits: the outbox asks :func:`is_live` again before each campaign message.

"Live" is written once, here: the subscriber's current state for the purpose is
``opted_in`` and its number is (still) verified for that purpose in the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import phonenumbers

from app.audit.events import Tag, record_event
from app.clients.service import Client
from app.consent import repository as repo
from app.consent.schemas import (
    ConsentChange,
    ConsentChangePublic,
    ConsentEventPublic,
    ConsentPublic,
    ConsentsPublic,
)
from app.core.context import Context
from app.core.errors import FieldProblem, InvalidInput
from app.core.tx import Tx
from app.models.consent import Consent, ConsentEvent
from app.models.subscriber import Subscriber
from app.purposes import POLICIES, Purpose
from app.registry import service as registry
from app.registry.service import NotVerifiedForPurpose, SubscriberNotFound
from app.sms.templates import language_for

HISTORY_LIMIT = 200
# The purposes whose use needs a live opt-in; the only ones consent is recorded for.
CONSENT_PURPOSES = tuple(purpose for purpose, p in POLICIES.items() if p.needs_consent)
OPTED_IN = "opted_in"
OPTED_OUT = "opted_out"


async def record(
    tx: Tx, ctx: Context, *, client: Client, subscriber_id: str, data: ConsentChange, ip: str
) -> ConsentChangePublic:
    """Record an opt-in or opt-out given through the client's frontend."""
    if data.action == "opt_in" and data.policy_version is None:
        raise InvalidInput.field("policy_version", "is required to opt in")
    subscriber = await registry.get(tx, subscriber_id)
    if subscriber is None:
        raise SubscriberNotFound()
    purpose = str(data.purpose)
    if data.action == "opt_in":
        verified = await registry.verified_for(tx, subscriber_id=subscriber_id, purpose=purpose)
        if verified is None or verified.verified_at is None:
            raise NotVerifiedForPurpose(
                f"opt-in needs a number verified for {purpose}; verify it first",
                errors=[
                    FieldProblem(
                        location="body", field="purpose", detail=f"not verified for {purpose}"
                    )
                ],
            )
    state = await change(
        tx,
        ctx,
        subscriber=subscriber,
        purpose=purpose,
        action=data.action,
        source=data.source,
        policy_version=data.policy_version,
        locale=data.locale,
        client_ip=ip,
        actor=client.actor,
    )
    return ConsentChangePublic(subscriber_id=subscriber_id, **state.model_dump())


async def change(
    tx: Tx,
    ctx: Context,
    *,
    subscriber: Subscriber,
    purpose: str,
    action: str,
    source: str,
    policy_version: str | None,
    locale: str | None,
    client_ip: str | None,
    actor: str,
) -> ConsentPublic:
    """Append one change to the history and make it the current state (checked input)."""
    purpose = Purpose(purpose).value  # stored as the plain string
    await _hold(tx, subscriber.id)
    now = ctx.clock.now()
    before = await repo.current(tx, subscriber_id=subscriber.id, purpose=purpose)
    if locale is not None:
        language = language_for(locale)
    elif before:
        language = before[0].locale
    else:
        language = _number_language(ctx, subscriber)
    status = OPTED_IN if action == "opt_in" else OPTED_OUT
    event_id = await repo.append(
        tx,
        ConsentEvent(
            subscriber_id=subscriber.id,
            purpose=purpose,
            action=action,
            source=source,
            policy_version=policy_version,
            client_ip=client_ip,
            actor=actor,
            at=now,
        ),
    )
    await repo.set_state(
        tx,
        Consent(
            subscriber_id=subscriber.id,
            purpose=purpose,
            status=status,
            locale=language,
            source=source,
            policy_version=policy_version,
            event_id=event_id,
            changed_at=now,
        ),
    )
    await record_event(
        tx,
        Tag.CONSENT_OPTED_IN if action == "opt_in" else Tag.CONSENT_OPTED_OUT,
        actor=actor,
        at=now,
        subject=subscriber.id,
        details={"purpose": purpose, "source": source, "policy_version": policy_version},
    )
    return ConsentPublic.model_validate(
        {
            "purpose": purpose,
            "status": status,
            "locale": language,
            "source": source,
            "policy_version": policy_version,
            "changed_at": now,
        }
    )


async def _hold(tx: Tx, subscriber_id: str) -> None:
    """Take the subscriber's lock, and refuse (404) if it was erased before it was ours.

    Changes of one subscriber's consent run one at a time, so the newest history row and
    the current state always agree; and an erasure, which takes the same lock, either
    waits for the change and removes it with the rest, or has removed the subscriber
    first (a change read before it must not then write to a subscriber that is gone).
    SQLite's write lock already serialises all of them."""
    await registry.lock_subscribers(tx, [subscriber_id])
    if await registry.get(tx, subscriber_id) is None:
        raise SubscriberNotFound()


async def withdraw_opt_in(
    tx: Tx, ctx: Context, *, subscriber: Subscriber, purpose: str, source: str, actor: str
) -> bool:
    """Opt a subscriber out only if they are opted in now (read under the change's lock,
    so two at once write one opt-out); True when they were (an erased subscriber was not)."""
    purpose = Purpose(purpose).value
    try:
        await _hold(tx, subscriber.id)
    except SubscriberNotFound:
        return False
    before = await repo.current(tx, subscriber_id=subscriber.id, purpose=purpose)
    if not before or before[0].status != OPTED_IN:
        return False
    await opt_out(tx, ctx, subscriber=subscriber, purpose=purpose, source=source, actor=actor)
    return True


async def opt_out(
    tx: Tx, ctx: Context, *, subscriber: Subscriber, purpose: str, source: str, actor: str
) -> ConsentPublic:
    """An opt-out with no client behind it (an SMS, the carrier): no policy version, no
    address, the language kept."""
    return await change(
        tx,
        ctx,
        subscriber=subscriber,
        purpose=purpose,
        action="opt_out",
        source=source,
        policy_version=None,
        locale=None,
        client_ip=None,
        actor=actor,
    )


def _number_language(ctx: Context, subscriber: Subscriber) -> str:
    """The language of the number's country (ja for JP, ko for KR, else en)."""
    number = phonenumbers.parse(registry.phone_number(ctx, subscriber), None)
    return language_for(None, phonenumbers.region_code_for_number(number) or "")


async def read(tx: Tx, ctx: Context, *, client: Client, subscriber_id: str) -> ConsentsPublic:
    """The current state per consent purpose and the newest history entries."""
    if await registry.get(tx, subscriber_id) is None:
        raise SubscriberNotFound()
    found = {row.purpose: row for row in await repo.current(tx, subscriber_id=subscriber_id)}
    consents = []
    for purpose in CONSENT_PURPOSES:
        row = found.get(purpose)
        consents.append(
            ConsentPublic.model_validate(
                {"purpose": purpose, "status": "none"}
                if row is None
                else row.model_dump(include=set(ConsentPublic.model_fields))
            )
        )
    # An address is the caller's own only: another client's, or the person's own (a
    # withdrawal on the self-service pages), is not this client's to read.
    history = [
        ConsentEventPublic.model_validate(event).model_copy(
            update={"client_ip": event.client_ip if event.actor == client.actor else None}
        )
        for event in await repo.history(tx, subscriber_id=subscriber_id, limit=HISTORY_LIMIT)
    ]
    return ConsentsPublic(subscriber_id=subscriber_id, consents=consents, history=history)


async def current(tx: Tx, *, subscriber_id: str) -> list[Consent]:
    """A subscriber's current consent per purpose (none recorded: empty)."""
    return await repo.current(tx, subscriber_id=subscriber_id)


# -- who is live: what campaign deliveries ask -------------------------------------------


def live_condition(subscriber_id: str, purpose: Purpose) -> str:
    """The same rule as :func:`live_among`, as an SQL condition on a column holding a
    subscriber id: for a statement that must check it in the same breath as it acts (the
    outbox taking a campaign message for sending)."""
    return (
        "EXISTS (SELECT 1 FROM consents WHERE consents.subscriber_id = "  # noqa: S608 (fixed)
        f"{subscriber_id} AND consents.purpose = '{purpose.value}' "
        f"AND consents.status = '{OPTED_IN}') AND EXISTS (SELECT 1 FROM subscriber_purposes "
        f"WHERE subscriber_purposes.subscriber_id = {subscriber_id} "
        f"AND subscriber_purposes.purpose = '{purpose.value}')"
    )


async def is_live(tx: Tx, *, subscriber_id: str, purpose: str) -> bool:
    """Whether the subscriber's opt-in to the purpose is live right now."""
    return bool(await live_among(tx, [subscriber_id], purpose=purpose))


async def live_among(tx: Tx, subscriber_ids: Sequence[str], *, purpose: str) -> set[str]:
    """Which of ``subscriber_ids`` have a live opt-in to the purpose."""
    found = await repo.states(tx, subscriber_ids, purpose=purpose)
    opted_in = [s for s, consent in found.items() if consent.status == OPTED_IN]
    return await registry.verified_among(tx, opted_in, purpose=purpose)


@dataclass(frozen=True)
class Member:
    """One subscriber verified for a purpose, and its consent (None: never recorded)."""

    subscriber_id: str
    status: str | None
    locale: str | None


async def audience(tx: Tx, *, purpose: str, after: str, limit: int) -> list[Member]:
    """The next ``limit`` subscribers verified for a purpose after the id ``after`` (keyset
    order), each with its consent state."""
    ids = await registry.verified_after(tx, purpose=purpose, after=after, limit=limit)
    found = await repo.states(tx, ids, purpose=purpose)
    return [
        Member(
            subscriber_id=subscriber_id,
            status=found[subscriber_id].status if subscriber_id in found else None,
            locale=found[subscriber_id].locale if subscriber_id in found else None,
        )
        for subscriber_id in ids
    ]


async def history(tx: Tx, *, subscriber_id: str, limit: int) -> list[ConsentEvent]:
    """A subscriber's consent history, newest first (the subject's own view)."""
    return await repo.history(tx, subscriber_id=subscriber_id, limit=limit)


async def history_count(tx: Tx, *, subscriber_id: str) -> int:
    """How many changes a subscriber's consent history holds."""
    return await repo.history_count(tx, subscriber_id=subscriber_id)
