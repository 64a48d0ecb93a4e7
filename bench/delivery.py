"""Queue one campaign to 100,000 opted-in subscribers, and print the time and memory it took.

    .venv/bin/python bench/delivery.py [--subscribers 100000] [--keep]

1. Builds a fresh SQLite database in a temporary directory with the Alembic migrations,
   and fresh random key rings (the real AES-GCM encryption and HMAC blind index).
2. Seeds N subscribers straight into the tables in batches of 10,000: each verified for
   coupon_delivery, with an opt-in (history row and current state). Seeding is not timed.
3. Times the campaign as POST /v1/deliveries runs it, minus HTTP: the service's start
   (one transaction) and its batches (one transaction each), on the same Database class
   the server uses. A thread samples the process's resident memory every 10 ms.
4. Checks every subscriber got exactly one queued message, and times one outbox claim
   of 50 messages against the backlog (it must not grow with the backlog).

Target (issue 4): under 60 s for 100,000, with memory flat (batches, never all rows).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core.clock import SystemClock  # noqa: E402
from app.core.config import Settings, new_key  # noqa: E402
from app.core.context import Context  # noqa: E402
from app.core.crypto import Keys  # noqa: E402
from app.core.db import Database, Tx, create_db_engine  # noqa: E402
from app.core.migrations import upgrade  # noqa: E402
from app.delivery import service  # noqa: E402
from app.delivery.schemas import DeliveryCreate  # noqa: E402
from app.registry.repository import subscriber_aad  # noqa: E402
from app.sms import outbox  # noqa: E402
from app.staff import api_keys  # noqa: E402

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


def seed(db: Database, ctx: Context, n: int) -> None:
    """N subscribers verified for coupon_delivery with a live opt-in, in batches."""
    now = ctx.clock.now()
    for start in range(0, n, SEED_BATCH):
        subscribers, purposes, events, consents = [], [], [], []
        for i in range(start, min(n, start + SEED_BATCH)):
            e164 = f"+8190{10_000_000 + i:08d}"
            index = ctx.keys.blind_index(e164, kind="number")
            key_id, ciphertext = ctx.keys.encrypt(e164, context=subscriber_aad(index))
            subscriber_id = f"sub_{i:022d}"
            subscribers.append(
                {"id": subscriber_id, "c": ciphertext, "k": key_id, "i": index, "now": now}
            )
            purposes.append({"s": subscriber_id, "now": now})
            events.append({"id": i + 1, "s": subscriber_id, "now": now})
            consents.append({"s": subscriber_id, "e": i + 1, "now": now})

        def write(tx: Tx) -> None:
            tx.executemany(
                "INSERT INTO subscribers (id, phone_ciphertext, phone_key_id, phone_index, "
                "created_at, last_verified_at) VALUES (:id, :c, :k, :i, :now, :now)",
                subscribers,  # noqa: B023 (called at once)
            )
            tx.executemany(
                "INSERT INTO subscriber_purposes (subscriber_id, purpose, verified_at) "
                "VALUES (:s, 'coupon_delivery', :now)",
                purposes,  # noqa: B023
            )
            tx.executemany(
                "INSERT INTO consent_events (id, subscriber_id, purpose, action, source, "
                "policy_version, client_ip, actor, at) VALUES (:id, :s, 'coupon_delivery', "
                "'opt_in', 'web', '2026-04', '192.0.2.1', 'bench', :now)",
                events,  # noqa: B023
            )
            tx.executemany(
                "INSERT INTO consents (subscriber_id, purpose, status, locale, source, "
                "policy_version, event_id, changed_at) VALUES (:s, 'coupon_delivery', "
                "'opted_in', 'ja', 'web', '2026-04', :e, :now)",
                consents,  # noqa: B023
            )

        db.call(write)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="smsreg-delivery-bench-"))
    url = f"sqlite:///{workdir / 'bench.db'}"
    try:
        upgrade(url)
        settings = Settings(
            database_url=url,
            state_dir=workdir / "state",
            **{
                f"{family}_keys": {"b1": new_key()}
                for family in ("phone", "index", "code", "token")
            },  # type: ignore[arg-type]
        )
        ctx = Context(settings=settings, keys=Keys(settings), clock=SystemClock())
        db = Database(create_db_engine(url))
        client_key = db.call(
            api_keys.create, ctx, name="bench", scopes=["deliveries:write"], created_by="bench"
        )
        client = db.call(api_keys.authenticate, ctx, token=client_key.token)

        began = time.perf_counter()
        seed(db, ctx, args.subscribers)
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
        started = db.call(service.start, ctx, client=client, data=data)
        result = asyncio.run(service.finish(db, ctx, started))
        took = time.perf_counter() - began
        during = sampler.stop()

        queued = db.call(lambda tx: tx.scalar("SELECT count(*) AS n FROM outbox_messages"))
        distinct = db.call(
            lambda tx: tx.scalar(
                "SELECT count(DISTINCT subscriber_id) AS n FROM outbox_messages "
                "WHERE kind = 'campaign'"
            )
        )
        began = time.perf_counter()
        claimed = db.call(
            outbox.claim_and_render, ctx, now=ctx.clock.now() + dt.timedelta(seconds=1), limit=50
        )
        claim_ms = (time.perf_counter() - began) * 1000

        counts = result.counts
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
        db.close()
        db.engine.dispose()
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
