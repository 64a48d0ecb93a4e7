"""Seed a database with N subscribers and their history, as the service itself writes them.

Used by bench/scale.py. Every number is encrypted and blind-indexed with the service's
own code (app.core.crypto) under the run's keys, so the server finds and decrypts what is
seeded; rows go in by bulk inserts: PostgreSQL ``COPY`` through psycopg, SQLite
``executemany`` in large transactions. What each subscriber gets:

- the subscriber row, verified for coupon_usage, and for coupon_delivery in 3 of 10 cases
  with an opt-in (consent history and current state);
- 1 to 3 approved verifications over the last 180 days (kept six months by the
  retention schedule), each with its sent code SMS and two audit events (started,
  approved);
- for the sends of the last day: the number's send window and the shared send-limit
  counts (address, prefix, country, source) in minute slots.

With ``due_days`` > 0 it adds that many days of what ``smsreg purge`` deletes, dated
before what the schedule keeps: every subscriber's verification of a day spread over
the day, one in five never checked, their SMS, send windows and shared counts, and
idempotency records.

Rows go in in the order a running service writes them. Subscribers first, chunk by
chunk; then every verification, with its SMS and audit events, in the order of its
start across all subscribers, so that the rows a purge deletes lie together in the
tables and in their time-keyed indexes as a day's traffic does (written subscriber by
subscriber, a day's verifications were strewn over the whole table, and deleting them
rewrote a page for nearly every row); last, the send windows by their end and the
shared counts by key.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

from bulk import TABLES, Rows, writer

from app.core.context import Context
from app.core.crypto import subscriber_aad, verification_aad
from app.core.ids import new_id, new_ordered_id
from app.core.phone import parse_mobile
from app.verification.limits import client_index, source_bucket
from app.verification.pumping import approvals_bucket

REGISTERED_PREFIX = "+8170"  # seeded numbers: +81 70, then 8 digits not starting with 0
# Subscriber i's 8 digits are 10000000 + i * SPREAD (mod 90,000,000): one-to-one, and
# consecutive subscribers fall in different limit prefixes (7010 ... 7099), as real
# numbers do; all in one prefix, the pumping guard would pause the range.
_SPAN = 90_000_000
SPREAD = 7_777_777  # shares no factor with _SPAN
_UNSPREAD = pow(SPREAD, -1, _SPAN)
CHUNK = 20_000  # subscribers per transaction
DAY = dt.timedelta(days=1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def registered_number(i: int) -> str:
    """The number of seeded subscriber ``i`` (valid, and never one run.py draws for new
    starts once those are filtered by :func:`is_registered`)."""
    return f"{REGISTERED_PREFIX}{10_000_000 + i * SPREAD % _SPAN:08d}"


def is_registered(e164: str, n: int) -> bool:
    """Whether a number is one of the first ``n`` seeded ones."""
    if not e164.startswith(REGISTERED_PREFIX):
        return False
    return (int(e164[5:]) - 10_000_000) * _UNSPREAD % _SPAN < n


def _micros(at: dt.datetime) -> int:
    return (at - _EPOCH) // dt.timedelta(microseconds=1)


def _minute(at: dt.datetime) -> dt.datetime:
    return at.replace(second=0, microsecond=0)


class Planned(NamedTuple):
    """A verification to write in the second pass, in order of ``at``."""

    at: dt.datetime
    i: int  # the subscriber
    purpose: str
    approved: bool
    counted_at: dt.datetime | None  # when its send is still counted by the limits
    idempotency_key: str | None


class Number(NamedTuple):
    """A seeded number as its rows need it."""

    e164: str
    index: str
    prefix: str
    region: str
    ip: str


@dataclass
class History:
    """Rows of one chunk (of subscribers, then of verifications), table by table, with what
    the second pass and the end need: the numbers, the planned verifications, the counts."""

    ctx: Context
    client_id: str
    now: dt.datetime
    rng: random.Random
    rows: Rows = field(default_factory=lambda: {name: [] for name in TABLES})
    # Written at the end: the shared counts, and each number's send window (its newest).
    hits: dict[tuple[str, dt.datetime], int] = field(default_factory=dict)
    windows: dict[str, tuple[str, list[int], dt.datetime]] = field(default_factory=dict)
    numbers: list[tuple[Number, str]] = field(default_factory=list)  # (number, subscriber id)
    planned: list[Planned] = field(default_factory=list)
    consent_id: int = 0
    prefixes: dict[str, str] = field(default_factory=dict)  # prefix -> its blind index
    sample: list[tuple[str, str]] = field(default_factory=list)  # (subscriber id, number)

    def number(self, i: int) -> Number:
        """Seeded subscriber ``i``'s number, its blind indexes and its client's address
        (one per subscriber). Parsed once: parsing costs more than the rest of a row."""
        e164 = registered_number(i)
        keys = self.ctx.keys
        phone = parse_mobile(e164, default_region="JP", allowed_regions=["JP"])
        prefix = phone.prefix(self.ctx.settings.prefix_digits)
        if prefix not in self.prefixes:
            self.prefixes[prefix] = keys.blind_index(prefix, kind="prefix")
        return Number(
            e164=e164,
            index=keys.blind_index(e164, kind="number"),
            prefix=self.prefixes[prefix],
            region=phone.region,
            ip=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
        )

    def verification(self, plan: Planned) -> None:
        """One verification with its code SMS and audit events; approved when linked."""
        keys, s = self.ctx.keys, self.ctx.settings
        number, subscriber_id = self.numbers[plan.i]
        linked = subscriber_id if plan.approved else None
        at, purpose = plan.at, plan.purpose
        vid = new_ordered_id("ver")  # written in order of ``at``: ids sort as they would
        key_id, ciphertext = keys.encrypt(number.e164, context=verification_aad(vid))
        expires = at + dt.timedelta(seconds=s.code_ttl_seconds)
        done = at + dt.timedelta(seconds=self.rng.randrange(20, 120))
        self.rows["verifications"].append((
            vid, self.client_id, purpose, "ja", ciphertext, key_id,
            number.index, number.prefix, secrets.token_bytes(16),
            keys.code.active_id, s.code_length, "approved" if linked else "expired",
            1 if linked else 0, s.max_check_attempts, 1, at, expires, at,
            done if linked else None, linked,
        ))  # fmt: skip
        sent = at + dt.timedelta(milliseconds=self.rng.randrange(50, 900))
        self.rows["outbox_messages"].append((
            new_ordered_id("msg"), "code", vid, "sent", 1, 1, sent, at, at, expires,
            sent, "console", "SM" + secrets.token_hex(16), "delivered",
        ))  # fmt: skip
        audit = self.rows["audit_events"]
        audit.append(("verification:started", "client:bench", vid, at, {"purpose": purpose}))
        if linked:
            details = {"purpose": purpose, "subscriber_id": linked}
            audit.append(("verification:approved", "client:bench", vid, done, details))
        if plan.idempotency_key is not None:
            response = {"id": vid, "status": "pending"}
            self.rows["idempotency_records"].append(
                (
                    self.client_id,
                    plan.idempotency_key,
                    secrets.token_hex(32),
                    201,
                    response,
                    vid,
                    at,
                )  # fmt: skip
            )
        if plan.counted_at is not None:
            self.count_send(number, at=plan.counted_at)
            if linked:  # the pumping guard weighs a range's sends against its approvals
                key = (approvals_bucket(number.prefix), plan.counted_at + (done - at))
                self.hits[key] = self.hits.get(key, 0) + 1

    def count_send(self, number: Number, *, at: dt.datetime) -> None:
        """A send's shared counts in their minute slots, and the number's send window."""
        ip_index = client_index(self.ctx, number.ip)
        slot = _minute(at)
        for bucket in (
            f"i:{ip_index}",
            source_bucket(number.prefix, ip_index),
            f"p:{number.prefix}",
            f"c:{number.region}",
        ):
            self.hits[(bucket, slot)] = self.hits.get((bucket, slot), 0) + 1
        bucket = f"n:{number.index}"
        window = self.windows.get(bucket)
        if window is None or window[2] < at + DAY:
            self.windows[bucket] = (bucket, [_micros(at)], at + DAY)

    def subscriber(self, i: int, *, due_days: int) -> None:
        """Subscriber ``i``, and its verifications planned for the second pass."""
        rng, now, rows = self.rng, self.now, self.rows
        number = self.number(i)
        days = 180 * 86400
        times = sorted(
            now - dt.timedelta(seconds=rng.randrange(60, days)) for _ in range(rng.randint(1, 3))
        )
        first, last = times[0], times[-1]
        sid = new_id("sub")
        self.numbers.append((number, sid))
        key_id, ciphertext = self.ctx.keys.encrypt(
            number.e164, context=subscriber_aad(number.index)
        )
        rows["subscribers"].append((sid, ciphertext, key_id, number.index, first, last))
        delivery = rng.random() < 0.3
        purposes = ["coupon_usage", "coupon_delivery"] if delivery else ["coupon_usage"]
        for purpose in purposes:
            rows["subscriber_purposes"].append((sid, purpose, last, first))
        for at in times:
            counted = at if at > now - DAY else None  # still counted by the limits
            self.planned.append(Planned(at, i, rng.choice(purposes), True, counted, None))
        if delivery:
            self.consent_id += 1
            event = self.consent_id
            source = ("web", "2026-04")
            rows["consent_events"].append(
                (event, sid, "coupon_delivery", "opt_in", *source, number.ip, "client:bench", last)
            )
            rows["consents"].append(
                (sid, "coupon_delivery", "opted_in", "ja", *source, event, last)
            )
            details = {"purpose": "coupon_delivery", "source": "web", "policy_version": "2026-04"}
            rows["audit_events"].append(("consent:opted_in", "client:bench", sid, last, details))
        if len(self.sample) < 50_000:
            self.sample.append((sid, number.e164))
        for day in range(due_days):
            self.due(i, day=day)

    def due(self, i: int, *, day: int) -> None:
        """A day of what the purge deletes, before what the schedule keeps: a verification
        started a little over 183 days ago (one in five never checked: a little over a day
        ago, with an Idempotency-Key), and the shared counts and
        send window of a send a little over a day ago."""
        rng, now = self.rng, self.now
        checked = rng.random() >= 0.2
        kept = dt.timedelta(days=self.ctx.settings.verification_retention_days) if checked else DAY
        into = DAY * day + dt.timedelta(seconds=rng.randrange(1, 86400))
        key = None if checked else f"k{i}-{day}"
        self.planned.append(
            Planned(now - kept - into, i, "coupon_usage", checked, now - DAY - into, key)
        )

    def take(self) -> Rows:
        """The rows made since the last take, sorted by key where the service writes in
        key order."""
        rows = self.rows
        self.rows = {name: [] for name in TABLES}
        for name in ("verifications", "outbox_messages", "subscribers"):
            rows[name].sort(key=lambda row: row[0])
        return rows

    def take_counts(self) -> Rows:
        """The shared counts in key order, and the send windows in order of their end."""
        rows: Rows = {name: [] for name in TABLES}
        rows["rate_limit_hits"] = sorted((b, at, n) for (b, at), n in self.hits.items())
        rows["send_windows"] = sorted(self.windows.values(), key=lambda row: row[2])
        self.hits, self.windows = {}, {}
        return rows


def seed(
    url: str,
    ctx: Context,
    *,
    subscribers: int,
    client_id: str,
    due_days: int = 0,
    seed: int | None = None,
    progress: Callable[[str], None] = print,
) -> list[tuple[str, str]]:
    """Seed ``subscribers`` subscribers with their history; a sample of (id, number).

    Two passes, each in chunks: the subscribers, then their verifications in order of
    their start. One chunk is written (in a thread: the drivers let go of the GIL while
    the database works) while the next is made."""
    out = writer(url)
    history = History(ctx=ctx, client_id=client_id, now=ctx.clock.now(), rng=random.Random(seed))
    began, cpu_began = time.perf_counter(), time.process_time()

    def chunks() -> Iterator[Rows]:
        for start in range(0, subscribers, CHUNK):
            end = min(subscribers, start + CHUNK)
            for i in range(start, end):
                history.subscriber(i, due_days=due_days)
            yield history.take()
            rate = end / (time.perf_counter() - began)
            progress(f"  made {end:,} subscribers ({rate:,.0f}/s)")
        planned = sorted(history.planned, key=lambda plan: plan.at)
        history.planned = []
        for start in range(0, len(planned), CHUNK):
            for plan in planned[start : start + CHUNK]:
                history.verification(plan)
            yield history.take()
            done = min(len(planned), start + CHUNK)
            progress(f"  made {done:,} of {len(planned):,} verifications")
        yield history.take_counts()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future[None] | None = None
        for rows in chunks():
            if pending is not None:
                pending.result()
            pending = pool.submit(out.write, rows)
        if pending is not None:
            pending.result()
    out.finish()
    cpu = time.process_time() - cpu_began  # a loaded machine's wall time says little
    took = time.perf_counter() - began
    progress(f"  seeded {subscribers:,} subscribers in {took:.0f} s ({cpu:.0f} s of CPU here)")
    return history.sample
