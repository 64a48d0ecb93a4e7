"""Consent to coupon delivery: opt-in and opt-out with their proof, and the history.

Every change appends a history row (time, action, source, policy version, client IP,
actor) and makes it the current state, in one transaction. An opt-out takes effect
when it commits: the outbox re-reads the state before each campaign message.
"""

from __future__ import annotations

import phonenumbers

from app.audit.events import Tag, record_event
from app.consent import repository as repo
from app.consent.schemas import (
    ConsentChange,
    ConsentChangePublic,
    ConsentEventPublic,
    ConsentPublic,
    ConsentsPublic,
)
from app.core.context import Context
from app.core.db import Row, Tx, xact_lock
from app.core.errors import AppError, FieldProblem, InvalidInput, NotFound
from app.registry.repository import subscriber_aad
from app.sms.templates import language_for
from app.staff.api_keys import Client

HISTORY_LIMIT = 200
CONSENT_PURPOSES = (repo.DELIVERY_PURPOSE,)


class SubscriberNotFound(NotFound):
    slug = "subscriber-not-found"
    title = "No such subscriber"


class NotVerifiedForPurpose(AppError):
    status = 409
    slug = "not-verified-for-purpose"
    title = "The number was not verified by SMS for this purpose"


def record(
    tx: Tx, ctx: Context, *, client: Client, subscriber_id: str, data: ConsentChange, ip: str
) -> ConsentChangePublic:
    """Record an opt-in or opt-out given through the client's frontend."""
    if data.action == "opt_in" and data.policy_version is None:
        raise InvalidInput.field("policy_version", "is required to opt in")
    subscriber = repo.get_subscriber(tx, subscriber_id)
    if subscriber is None:
        raise SubscriberNotFound()
    if data.action == "opt_in" and not repo.verified_for(
        tx, subscriber_id=subscriber_id, purpose=data.purpose
    ):
        raise NotVerifiedForPurpose(
            f"opt-in needs a number verified for {data.purpose}; verify it first",
            errors=[
                FieldProblem(
                    location="body", field="purpose", detail=f"not verified for {data.purpose}"
                )
            ],
        )
    state = change(
        tx,
        ctx,
        subscriber=subscriber,
        purpose=data.purpose,
        action=data.action,
        source=data.source,
        policy_version=data.policy_version,
        locale=data.locale,
        client_ip=ip,
        actor=f"api_key:{client.id}",
    )
    return ConsentChangePublic(subscriber_id=subscriber_id, **state.model_dump())


def change(
    tx: Tx,
    ctx: Context,
    *,
    subscriber: Row,
    purpose: str,
    action: str,
    source: str,
    policy_version: str | None,
    locale: str | None,
    client_ip: str | None,
    actor: str,
) -> ConsentPublic:
    """Append one change to the history and make it the current state (checked input)."""
    # Changes of one subscriber's consent run one at a time, so the newest history row
    # and the current state always agree (SQLite's write lock already serialises them).
    xact_lock(tx, f"consent:{subscriber.id}:{purpose}")
    now = ctx.clock.now()
    before = repo.current(tx, subscriber_id=subscriber.id, purpose=purpose)
    if locale is not None:
        language = language_for(locale)
    elif before:
        language = before[0].locale
    else:
        language = _number_language(ctx, subscriber)
    status = repo.OPTED_IN if action == "opt_in" else repo.OPTED_OUT
    event_id = repo.append(
        tx,
        {
            "subscriber_id": subscriber.id,
            "purpose": purpose,
            "action": action,
            "source": source,
            "policy_version": policy_version,
            "client_ip": client_ip,
            "actor": actor,
            "at": now,
        },
    )
    repo.set_state(
        tx,
        {
            "subscriber_id": subscriber.id,
            "purpose": purpose,
            "status": status,
            "locale": language,
            "source": source,
            "policy_version": policy_version,
            "event_id": event_id,
            "changed_at": now,
        },
    )
    record_event(
        tx,
        Tag.CONSENT_OPTED_IN if action == "opt_in" else Tag.CONSENT_OPTED_OUT,
        actor=actor,
        at=now,
        subject=subscriber.id,
        details={"purpose": purpose, "source": source, "policy_version": policy_version},
    )
    return ConsentPublic(
        purpose=purpose,
        status=status,
        locale=language,
        source=source,
        policy_version=policy_version,
        changed_at=now,
    )


def _number_language(ctx: Context, subscriber: Row) -> str:
    """The language of the number's country (ja for JP, ko for KR, else en)."""
    e164 = ctx.keys.decrypt(
        subscriber.phone_ciphertext,
        key_id=subscriber.phone_key_id,
        context=subscriber_aad(subscriber.phone_index),
    )
    region = phonenumbers.region_code_for_number(phonenumbers.parse(e164, None)) or ""
    return language_for(None, region)


def read(tx: Tx, ctx: Context, *, client: Client, subscriber_id: str) -> ConsentsPublic:
    """The current state per consent purpose and the newest history entries."""
    if repo.get_subscriber(tx, subscriber_id) is None:
        raise SubscriberNotFound()
    states = {row.purpose: row for row in repo.current(tx, subscriber_id=subscriber_id)}
    consents = []
    for purpose in CONSENT_PURPOSES:
        row = states.get(purpose)
        consents.append(
            ConsentPublic(purpose=purpose, status="none") if row is None else ConsentPublic(**row)
        )
    history = [
        ConsentEventPublic(**{k: v for k, v in row.items() if k != "id"})
        for row in repo.history(tx, subscriber_id=subscriber_id, limit=HISTORY_LIMIT)
    ]
    return ConsentsPublic(subscriber_id=subscriber_id, consents=consents, history=history)
