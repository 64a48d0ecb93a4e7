"""Subject sessions: a person proves control of their number by SMS (purpose
``data_subject``) and gets a short-lived token for that one subscriber.

The verification is the service's own (the self-service client), so no third party sees
the code. The token is shown once and stored as a keyed hash; it opens /v1/subject and
nothing else (every other credential check looks in another table and another prefix).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.clients import service as clients
from app.core.context import Context
from app.core.db import Database
from app.core.errors import AppError, FieldProblem, NotFound, Unauthenticated
from app.core.ids import new_id
from app.core.metrics import VERIFICATIONS_APPROVED, VERIFICATIONS_STARTED
from app.core.tx import Tx
from app.models.subject import SubjectSession
from app.registry import service as registry
from app.subject import repository as repo
from app.subject.schemas import (
    SubjectCodeCheck,
    SubjectSessionPublic,
    SubjectStart,
    SubjectVerificationPublic,
)
from app.verification import checking
from app.verification import service as verification
from app.verification.schemas import VerificationCheck, VerificationPublic, VerificationStart
from app.verification.states import VerificationNotFound

TOKEN_PREFIX = "smsreg_st_"  # noqa: S105 (a label, not a secret)
MAX_TOKEN_LENGTH = 200


class NothingHeld(NotFound):
    slug = "subject-nothing-held"
    title = "No registry entry is held for this number"


class SameNumber(AppError):
    status = 409
    slug = "subject-number-unchanged"
    title = "The records are already under this number"


@dataclass(frozen=True)
class Subject:
    """An authenticated data subject: one subscriber, for the session's lifetime."""

    session_id: str
    subscriber_id: str
    expires_at: dt.datetime

    @property
    def actor(self) -> str:
        """How audit rows name the subject acting on their own data."""
        return f"subject:{self.subscriber_id}"


# The self-service verifications in the same counters as the clients', by their purpose.
_STARTED = VERIFICATIONS_STARTED.labels("data_subject")
_APPROVED = VERIFICATIONS_APPROVED.labels("data_subject")


async def start(tx: Tx, ctx: Context, *, data: SubjectStart, ip: str) -> SubjectVerificationPublic:
    """Send a ``data_subject`` code to the number, within every send limit."""
    client = await clients.self_service_client(tx, ctx)
    started = await verification.start(
        tx, ctx, client=client, data=_as_start(data), ip=ip, idempotency_key=None
    )
    tx.after_commit(_STARTED.inc)  # counted as a client's starts are, once it is queued
    return _as_subject(started.public)


def _as_start(data: SubjectStart) -> VerificationStart:
    """A subject's request for a code, as the verification it starts."""
    return VerificationStart(
        phone=data.phone, purpose="data_subject", locale=data.locale, country=data.country
    )


async def start_correction(
    tx: Tx, ctx: Context, *, subject: Subject, data: SubjectStart, ip: str
) -> SubjectVerificationPublic:
    """Send a code to the number the subject's records should move to.

    Refused (409 subject-number-unchanged), before any SMS is sent, when it is the
    number the records are already under: moving them onto it changes nothing, yet the
    move would record a correction and cancel the campaign messages held for them. The
    number is compared by its blind index under every key in the ring, never decrypted.
    """
    phone = verification.number_to_start(ctx, _as_start(data))
    indexes = ctx.keys.blind_indexes(phone.e164, kind="number")
    holder = await registry.find_id(tx, phone_index=indexes)
    if holder == subject.subscriber_id:
        raise SameNumber(
            "the records are already under this number; nothing to move",
            errors=[FieldProblem(location="body", field="phone", detail="is the current number")],
        )
    return await start(tx, ctx, data=data, ip=ip)


async def sent(tx: Tx, ctx: Context, verification_id: str) -> SubjectVerificationPublic | None:
    """A self-service verification as its code page shows it (None: no such one); one
    superseded by a newer start for its number (two sends of the number's form at once:
    the browser may keep the older one's answer) as the newest, whose code was sent."""
    client = clients.SELF_SERVICE
    try:
        public = await verification.read(tx, ctx, client=client, verification_id=verification_id)
    except VerificationNotFound:
        return None
    if public.status == "superseded":
        newest = await verification.newest_instead(
            tx, ctx, client=client, verification_id=verification_id
        )
        if newest is not None:
            public = await verification.read(tx, ctx, client=client, verification_id=newest)
    return _as_subject(public)


def _as_subject(public: VerificationPublic) -> SubjectVerificationPublic:
    """A self-service verification as the subject is shown it."""
    return SubjectVerificationPublic(
        verification_id=public.id,
        phone_masked=public.phone_masked,
        expires_at=public.expires_at,
        attempts_left=public.attempts_left,
    )


async def check_code(db: Database, ctx: Context, *, data: SubjectCodeCheck) -> str | None:
    """Check a self-service code in a unit of its own (a wrong one is counted); the
    subscriber the approved number holds, or None (not in the registry)."""
    async with db.transaction() as tx:
        checked = await checking.check(
            tx,
            ctx,
            client=clients.SELF_SERVICE,
            verification_id=data.verification_id,
            data=VerificationCheck(code=data.code),
        )
    _APPROVED.inc()
    return checked.subscriber_id


async def open_session(
    db: Database, ctx: Context, *, data: SubjectCodeCheck
) -> SubjectSessionPublic:
    """Check the code, then exchange the approved verification for a subject token.

    Two units: the check's write is the last statement of its own. Only the request that
    approved the verification opens its session (a code works once), and the session
    table refuses a second session for one verification.
    """
    subscriber_id = await check_code(db, ctx, data=data)
    if subscriber_id is None:
        # Coupon uses kept under the number's keyed hash after an erasure or a move are
        # not shown: they may be another person's, who held the number before.
        raise NothingHeld("we hold no registry entry for this number")
    now = ctx.clock.now()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session = SubjectSession(
        id=new_id("sjs"),
        subscriber_id=subscriber_id,
        token_hash=ctx.keys.token_hash(token),
        token_key_id=ctx.keys.token.active_id,
        verification_id=data.verification_id,
        created_at=now,
        expires_at=now + dt.timedelta(minutes=ctx.settings.subject_session_minutes),
    )
    async with db.transaction() as tx:
        await repo.insert_session(tx, session)
        await record_event(
            tx,
            Tag.SUBJECT_SESSION_OPENED,
            actor=f"subject:{subscriber_id}",
            at=now,
            subject=subscriber_id,
            details={"session_id": session.id},
        )
    return SubjectSessionPublic(
        token=token, expires_at=session.expires_at, subject_id=subscriber_id
    )


async def authenticate(tx: Tx, ctx: Context, *, token: str) -> Subject:
    """The subject a token speaks for, or Unauthenticated (unknown, expired, ended)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthenticated("send 'Authorization: Bearer <subject token>'")
    ring = ctx.keys.token
    hashes = [ring.mac(token.encode(), key_id=key_id).hex() for key_id in ring.ids()]
    session = await repo.session_by_hashes(tx, hashes)
    now = ctx.clock.now()
    if session is None or session.revoked_at is not None or session.expires_at <= now:
        raise Unauthenticated("the subject session is unknown, expired or ended")
    return Subject(
        session_id=session.id, subscriber_id=session.subscriber_id, expires_at=session.expires_at
    )


async def still_live(tx: Tx, ctx: Context, *, subject: Subject) -> None:
    """Check again, in a later unit, that the subject's session is live."""
    session = await repo.get_session(tx, subject.session_id)
    if session is None or session.revoked_at is not None or session.expires_at <= ctx.clock.now():
        raise Unauthenticated("the subject session is unknown, expired or ended")


async def end(tx: Tx, ctx: Context, *, subject: Subject) -> None:
    """End the subject's session now."""
    await repo.end_session(tx, session_id=subject.session_id, at=ctx.clock.now())


async def start_correction_apart(
    db: Database, ctx: Context, *, subject: Subject, data: SubjectStart, ip: str
) -> SubjectVerificationPublic:
    """:func:`start_correction` in a unit of its own (for the pages, as :func:`start_apart`)."""
    async with db.transaction() as tx:
        return await start_correction(tx, ctx, subject=subject, data=data, ip=ip)


async def start_apart(
    db: Database, ctx: Context, *, data: SubjectStart, ip: str
) -> SubjectVerificationPublic:
    """:func:`start` in a unit of its own (for the pages, which answer a refusal with a
    page of their own: the unit rolls back first, as a route's does)."""
    async with db.transaction() as tx:
        return await start(tx, ctx, data=data, ip=ip)
