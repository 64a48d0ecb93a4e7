"""`smsreg purge`: apply the retention schedule (run it daily from cron)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from app.core.cli_support import runtime
from app.retention import service
from app.retention.service import PurgeReport


def purge(
    batch: Annotated[int, typer.Option(min=10, max=100_000, help="rows per transaction")] = 1000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count what would go; delete nothing")
    ] = False,
) -> None:
    """Delete what the retention schedule no longer keeps (run it daily from cron)."""
    db, ctx = runtime()

    async def main() -> PurgeReport:
        try:
            return await service.purge(db, ctx, batch=batch, dry_run=dry_run)
        finally:
            await db.dispose()

    report = asyncio.run(main())
    for kind, n in report.deleted.items():
        typer.echo(f"{kind}: {n} {'would be deleted' if dry_run else 'deleted'}")
