"""Login throttles: per address, and per (address, username), shared through the database.

Every login attempt is written before its password is verified (``pending``), so
concurrent guesses count against each other; it ends ``failed`` or ``succeeded``. Over
the last ``SMSREG_LOGIN_LOCKOUT_MINUTES`` (15):

- one address and one username (the *source*) get ``SMSREG_LOGIN_MAX_FAILURES`` (5)
  wrong tries; then that source is locked: it is answered 429 with Retry-After (until
  its oldest counted failure leaves the window), before any password is verified;
- one address gets ``SMSREG_LOGIN_FAILURES_PER_IP`` (20) wrong tries over every
  username, then 429 the same way.

Only the offending source is held back: the account's owner, from another address,
logs in as usual, so nobody can lock someone else out by guessing their username. A
success forgives its source's failures; an admin's unlock (app.staff.lockout) forgives
every failure on the account. Addresses and names are kept only as keyed hashes.
"""

from __future__ import annotations

import datetime as dt
import math

from app.audit.events import Tag, record_event
from app.core.addresses import counted_as
from app.core.context import Context
from app.core.errors import RateLimited
from app.core.tx import Tx
from app.models.staff import StaffLoginAttempt
from app.staff import attempts_repository as arepo


class LoginThrottled(RateLimited):
    slug = "login-throttled"
    title = "Too many failed logins from this address: try again later (Retry-After: seconds)"


def _buckets(ctx: Context, *, ip: str, username: str) -> tuple[str, str]:
    keys, client = ctx.keys, counted_as(ip)  # an IPv6 client by its /64
    return (
        keys.blind_index(client, kind="login-ip"),
        keys.blind_index(f"{client}\n{username}", kind="login-source"),
    )


def _window(ctx: Context) -> dt.timedelta:
    return dt.timedelta(minutes=ctx.settings.login_lockout_minutes)


async def begin(tx: Tx, ctx: Context, *, ip: str, username: str, staff_id: str | None) -> int:
    """Refuse a throttled source or address (LoginThrottled, nothing written); else count
    the attempt now and return its id, for :func:`finish`."""
    ip_bucket, source_bucket = _buckets(ctx, ip=ip, username=username)
    for bucket in sorted((ip_bucket, source_bucket)):  # one order: no deadlock
        await tx.lock(f"login:{bucket}")
    now = ctx.clock.now()
    since = now - _window(ctx)
    s = ctx.settings
    for column, bucket, limit, name in (
        ("source_bucket", source_bucket, s.login_max_failures, "login_source"),
        ("ip_bucket", ip_bucket, s.login_failures_per_ip, "login_ip"),
    ):
        window = await arepo.counted(tx, column=column, bucket=bucket, since=since)
        if window.failures >= limit:
            oldest = window.oldest or now
            retry = math.ceil((oldest + _window(ctx) - now).total_seconds())
            minutes = max(1, math.ceil(retry / 60))
            raise LoginThrottled(
                f"too many failed logins; try again in {minutes} minute"
                + ("" if minutes == 1 else "s"),
                retry_after=retry,
                limit=name,
            )
    return await arepo.insert(
        tx,
        StaffLoginAttempt(
            at=now,
            ip_bucket=ip_bucket,
            source_bucket=source_bucket,
            staff_id=staff_id,
            outcome="pending",
        ),
    )


async def finish(
    tx: Tx,
    ctx: Context,
    *,
    attempt_id: int,
    ok: bool,
    ip: str,
    username: str,
    staff_id: str | None,
) -> None:
    """Record how an attempt ended; a failure that reaches the source's limit locks that
    source (audited), a success forgives the source's failures."""
    _, source_bucket = _buckets(ctx, ip=ip, username=username)
    if ok:
        await arepo.set_outcome(tx, attempt_id, "succeeded")
        await arepo.clear_source(tx, source_bucket=source_bucket)
        return
    await tx.lock(f"login:{source_bucket}")  # one failure at a time reaches the limit
    await arepo.set_outcome(tx, attempt_id, "failed")
    now = ctx.clock.now()
    window = await arepo.counted(
        tx, column="source_bucket", bucket=source_bucket, since=now - _window(ctx),
        in_flight=False,
    )  # fmt: skip
    if window.failures == ctx.settings.login_max_failures:
        oldest = window.oldest or now
        await record_event(
            tx,
            Tag.STAFF_LOGIN_LOCKED,
            actor="anonymous" if staff_id is None else f"staff:{staff_id}",
            at=now,
            subject=staff_id,
            details={
                "scope": "source",
                "ip": ip,
                "failures": window.failures,
                "locked_until": (oldest + _window(ctx)).isoformat(),
            },
        )


async def set_outcome(tx: Tx, *, attempt_id: int, outcome: str) -> None:
    """End an attempt that neither failed nor succeeded (the second factor still to send)."""
    await arepo.set_outcome(tx, attempt_id, outcome)


async def clear_account(tx: Tx, ctx: Context, *, staff_id: str) -> int:
    """Forgive every counted attempt on an account in the window (an admin's unlock)."""
    since = ctx.clock.now() - _window(ctx)
    return await arepo.clear_staff(tx, staff_id=staff_id, since=since)
