"""`smsreg purge`: apply the retention schedule (run it daily from cron)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import typer

from app.core.cli_support import runtime
from app.retention import service
from app.retention.service import PurgeReport

PROGRESS_SECONDS = 5.0  # at most one progress line per step this often


class Progress:
    """Progress lines on stderr: each step's running count and rate, every few seconds
    and when the step is done (a stopped run has committed every count it showed)."""

    def __init__(self, *, dry_run: bool = False) -> None:
        self.verb = "counted to delete" if dry_run else "deleted"
        self.counts: dict[str, int] = {}
        self.kind: str | None = None
        self.began = self.shown = time.monotonic()

    def __call__(self, kind: str, deleted: int) -> None:
        now = time.monotonic()
        if kind != self.kind:
            self.finish()
            self.kind, self.began, self.shown = kind, now, now
        self.counts[kind] = self.counts.get(kind, 0) + deleted
        if now - self.shown >= PROGRESS_SECONDS:
            self.shown = now
            self._line(kind, now)

    def _line(self, kind: str, now: float) -> None:
        n, seconds = self.counts[kind], max(now - self.began, 1e-6)
        typer.echo(f"  {kind}: {n:,} {self.verb} so far ({n / seconds:,.0f}/s)", err=True)

    def finish(self) -> None:
        """The last line of the step under way."""
        if self.kind is not None:
            self._line(self.kind, time.monotonic())


def purge(
    batch: Annotated[int, typer.Option(min=10, max=100_000, help="rows per transaction")] = 1000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count what would go; delete nothing")
    ] = False,
) -> None:
    """Delete what the retention schedule no longer keeps (run it daily from cron).

    Each batch commits on its own: stopped (Ctrl-C), a run keeps what it deleted, and
    the next run carries on from there."""
    db, ctx = runtime()
    progress = Progress(dry_run=dry_run)

    async def main() -> PurgeReport:
        try:
            return await service.purge(db, ctx, batch=batch, progress=progress, dry_run=dry_run)
        finally:
            await db.dispose()

    try:
        report = asyncio.run(main())
    except KeyboardInterrupt:
        progress.finish()
        done = sum(progress.counts.values())
        typer.echo(
            f"interrupted: {done:,} rows counted, nothing deleted"
            if dry_run
            else f"interrupted: {done:,} rows deleted and kept; run it again to go on",
            err=True,
        )
        raise typer.Exit(130) from None
    progress.finish()
    for kind, n in report.deleted.items():
        # Dormant subscribers are erased, each with a receipt, not merely deleted.
        verb = "erased" if kind == service.DORMANT else "deleted"
        typer.echo(f"{kind}: {n} {'would be ' + verb if dry_run else verb}")
