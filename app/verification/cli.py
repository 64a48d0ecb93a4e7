"""`smsreg pumping`: see and lift the pumping guard's blocks."""

from __future__ import annotations

from typing import Annotated

import typer

from app.core import cli_support
from app.core.cli_support import CLI_ACTOR
from app.verification import pumping

pumping_cli = typer.Typer(help="The pumping guard's blocked number prefixes.", no_args_is_help=True)


@pumping_cli.command("blocks")
def blocks(
    all_: Annotated[bool, typer.Option("--all", help="include lifted and expired blocks")] = False,
) -> None:
    """List blocked prefixes (in force, unless --all)."""
    rows = cli_support.call(pumping.list_blocks, active_only=not all_)
    if not rows:
        typer.echo("no blocks" if all_ else "no blocks in force")
    for row in rows:
        state = (
            f"lifted by {row.lifted_by}"
            if row.lifted_at
            else f"until {row.ends_at:%Y-%m-%d %H:%M}Z"
        )
        typer.echo(
            f"{row.id}  {row.prefix:<12} {row.region}  blocked {row.blocked_at:%Y-%m-%d %H:%M}Z  "
            f"{state}  sends={row.sends} approvals={row.approvals}"
        )


@pumping_cli.command("lift")
def lift(
    block_id: str,
    reason: Annotated[str, typer.Option(help="why the traffic is legitimate")],
) -> None:
    """Lift a block at once."""
    block = cli_support.call(pumping.lift, block_id=block_id, actor=CLI_ACTOR, reason=reason)
    typer.echo(f"lifted {block.id} ({block.prefix})")
