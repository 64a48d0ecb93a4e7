"""Queue one campaign to 100,000 opted-in subscribers, and print the time and memory it took.

    .venv/bin/python bench/delivery.py [--subscribers 100000] [--keep]

1. Builds a fresh SQLite database in a temporary directory with the Alembic migrations,
   and fresh random key rings (the real AES-GCM encryption and HMAC blind index).
2. Seeds N subscribers straight into the tables in batches of 10,000: each verified for
   coupon_delivery, with an opt-in (history row and current state). Seeding is not timed.
3. Times the campaign as POST /v1/deliveries runs it, minus HTTP: the service's deliver
   (its start, then its batches, one transaction each), on the same Database class the
   server uses. A thread samples the process's resident memory every 10 ms.
4. Checks every subscriber got exactly one queued message, and times one outbox claim
   of 50 messages against the backlog (it must not grow with the backlog).

Target: under 60 s for 100,000, with memory flat (batches, never all rows).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.clients import service as clients  # noqa: E402
from app.core.clock import SystemClock  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.core.context import Context  # noqa: E402
from app.core.crypto import Keys, subscriber_aad  # noqa: E402
from app.core.db import Database, create_sync_engine  # noqa: E402
from app.core.key_material import new_key  # noqa: E402
from app.core.migrations import upgrade  # noqa: E402
from app.delivery import service  # noqa: E402
from app.delivery.schemas import DeliveryCreate  # noqa: E402
from app.models.consent import Consent, ConsentEvent  # noqa: E402
from app.models.subscriber import Subscriber, SubscriberPurpose  # noqa: E402
from app.models.types import table  # noqa: E402
from app.sms import outbox  # noqa: E402

SEED_BATCH = 10_000
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    """Resident memory now (not the peak)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE / 2**20


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Sampler(threading.Thread):
    """Samples resident memory while the timed part runs."""

    def __init__(self, every: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.peak = 0.0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_mb())
            time.sleep(self.every)

    def stop(self) -> float:
        self._done.set()
        self.join()
        return max(self.peak, rss_mb())


def seed(engine: sa.Engine, ctx: Context, n: int) -> None:
    """N subscribers verified for coupon_delivery with a live opt-in, in batches (straight
    into the tables: seeding is not what is measured)."""
    now = ctx.clock.now()
    for start in range(0, n, SEED_BATCH):
        subscribers: list[dict[str, Any]] = []
        purposes, events, consents = [], [], []
        for i in range(start, min(n, start + SEED_BATCH)):
            e164 = f"+8190{10_000_000 + i:08d}"
            index = ctx.keys.blind_index(e164, kind="number")
            key_id, ciphertext = ctx.keys.encrypt(e164, context=subscriber_aad(index))
            subscriber_id = f"sub_{i:022d}"
            subscribers.append(
                {
                    "id": subscriber_id,
                    "phone_ciphertext": ciphertext,
                    "phone_key_id": key_id,
                    "phone_index": index,
                    "created_at": now,
                    "last_verified_at": now,
                }
            )
            purposes.append(
                {"subscriber_id": subscriber_id, "purpose": "coupon_delivery", "verified_at": now}
            )
            events.append(
                {
                    "id": i + 1,
                    "subscriber_id": subscriber_id,
                    "purpose": "coupon_delivery",
                    "action": "opt_in",
                    "source": "web",
                    "policy_version": "2026-04",
                    "client_ip": "192.0.2.1",
                    "actor": "bench",
                    "at": now,
                }
            )
            consents.append(
                {
                    "subscriber_id": subscriber_id,
                    "purpose": "coupon_delivery",
                    "status": "opted_in",
                    "locale": "ja",
                    "source": "web",
                    "policy_version": "2026-04",
                    "event_id": i + 1,
                    "changed_at": now,
                }
            )
        with engine.begin() as conn:
            conn.execute(sa.insert(table(Subscriber)), subscribers)
            conn.execute(sa.insert(table(SubscriberPurpose)), purposes)
            conn.execute(sa.insert(table(ConsentEvent)), events)
            conn.execute(sa.insert(table(Consent)), consents)


def count(engine: sa.Engine, sql: str) -> int:
    """One number, read straight from the database."""
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


async def run(args: argparse.Namespace, workdir: Path) -> bool:
    """Seed, queue the campaign (timed), check it, and time one claim."""
    url = f"sqlite:///{workdir / 'bench.db'}"
    upgrade(url)
    settings = Settings(
        database_url=url,
        state_dir=workdir / "state",
        **{f"{family}_keys": {"b1": new_key()} for family in ("phone", "index", "code", "token")},  # type: ignore[arg-type]
    )
    ctx = Context(settings=settings, keys=Keys(settings), clock=SystemClock())
    db = Database(url)
    engine = create_sync_engine(url)
    try:
        async with db.transaction() as tx:
            key = await clients.create(
                tx, ctx, name="bench", scopes=["deliveries:write"], created_by="bench"
            )
            client = await clients.authenticate(tx, ctx, token=key.token)

        began = time.perf_counter()
        seed(engine, ctx, args.subscribers)
        seeded = time.perf_counter() - began
        size = sum(path.stat().st_size for path in workdir.glob("bench.db*")) / 2**20
        print(
            f"seeded {args.subscribers:,} opted-in subscribers in {seeded:.1f} s ({size:.0f} MiB)"
        )

        data = DeliveryCreate(
            campaign_id="bench-1",
            messages={"ja": "春のクーポンをお届けします", "en": "Your spring coupon"},
            default_locale="en",
        )
        before = rss_mb()
        sampler = Sampler()
        sampler.start()
        began = time.perf_counter()
        result = await service.deliver(db, ctx, client=client, data=data)
        took = time.perf_counter() - began
        during = sampler.stop()

        queued = count(engine, "SELECT count(*) FROM outbox_messages")
        distinct = count(
            engine,
            "SELECT count(DISTINCT subscriber_id) FROM outbox_messages WHERE kind = 'campaign'",
        )
        began = time.perf_counter()
        async with db.transaction() as tx:
            claimed = await outbox.claim(
                tx,
                now=ctx.clock.now() + dt.timedelta(seconds=1),
                lease=dt.timedelta(seconds=settings.outbox_lease_seconds),
                limit=50,
            )
        claim_ms = (time.perf_counter() - began) * 1000

        counts = result.public.counts
        print(
            f"queued one campaign: eligible {counts.eligible:,}, queued {counts.queued:,}, "
            f"skipped {counts.skipped:,} in {took:.2f} s "
            f"({counts.queued / took:,.0f} messages/s; batches of {settings.delivery_batch_size})"
        )
        print(
            f"memory: resident {before:.0f} MiB before queuing, {during:.0f} MiB at most while "
            f"queuing (+{during - before:.1f} MiB); process peak {peak_rss_mb():.0f} MiB"
        )
        print(f"one claim of 50 against the backlog: {claim_ms:.1f} ms ({len(claimed)} claimed)")
        ok = queued == distinct == counts.queued == args.subscribers
        print(f"check: one message per subscriber: {'OK' if ok else 'FAILED'}")
        print(f"target: under 60 s: {'PASS' if took < 60 else 'FAIL'}")
        return ok
    finally:
        await db.dispose()
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="smsreg-delivery-bench-"))
    try:
        return 0 if asyncio.run(run(args, workdir)) else 1
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
