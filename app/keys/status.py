"""What still uses each key of each ring, and whether a key the rows need is missing.

``smsreg keys status`` prints it; ``serve`` and ``worker`` check it at start (see
:func:`startup_problems`) and refuse to run without a phone or index key that rows
still use, since those rows could no longer be read or found.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.context import Context
from app.core.key_material import SECRET_FAMILIES
from app.core.tx import Tx
from app.keys import repository as repo
from app.keys.repository import Usage

# Without these keys rows are lost to the service: numbers that no longer decrypt,
# subscribers no longer found (and so registered twice). Refused at start.
FATAL_FAMILIES = ("phone", "index")
NOTES = {
    "phone": "rows re-encrypted by `smsreg keys rotate phone`",
    "index": "rows re-indexed by `smsreg keys rotate index`",
    "code": "a live verification keeps its code key id until it expires (10 minutes)",
    "token": "live API keys and sessions are checked under every key in the ring; "
    "an API key moves to the active key on its next use, a session ends by itself",
}


@dataclass(frozen=True)
class FamilyStatus:
    """One key ring: its active id, its ids, and which rows need which id."""

    family: str
    active_id: str
    ring: tuple[str, ...]
    usage: tuple[Usage, ...]

    def rows_on(self, key_id: str) -> int:
        """How many rows still need ``key_id``."""
        return sum(u.rows for u in self.usage if u.key_id == key_id)

    def removable(self) -> list[str]:
        """Older ids in the ring that no row needs any more: safe to remove."""
        return [k for k in self.ring if k != self.active_id and self.rows_on(k) == 0]

    def missing(self) -> list[str]:
        """Ids rows still need that are not in the ring (removed too early)."""
        return sorted({u.key_id for u in self.usage if u.rows and u.key_id not in self.ring})


async def status(
    tx: Tx, ctx: Context, *, families: tuple[str, ...] = SECRET_FAMILIES
) -> list[FamilyStatus]:
    """Every ring's state (``smsreg keys status``)."""
    now = ctx.clock.now()
    out = []
    for family in families:
        ring = getattr(ctx.keys, family)
        rows = await repo.usage(tx, family=family, now=now)
        out.append(
            FamilyStatus(
                family=family,
                active_id=ring.active_id,
                ring=ring.ids(),
                usage=tuple(row for row in rows if row.rows),
            )
        )
    return out


async def startup_problems(tx: Tx, ctx: Context) -> tuple[list[str], list[str]]:
    """(fatal, warnings): key ids rows still need that the rings no longer hold."""
    fatal: list[str] = []
    warnings: list[str] = []
    for state in await status(tx, ctx):
        for key_id in state.missing():
            text = (
                f"{state.rows_on(key_id)} row(s) still use {state.family} key id {key_id!r}, "
                f"which SMSREG_{state.family.upper()}_KEYS no longer holds"
            )
            if state.family in FATAL_FAMILIES:
                # Rotation rewrites what it can; an erased number's coupon tallies keep
                # their index key until they are purged (`keys status` says when).
                fatal.append(
                    f"{text}: put the key back, then run `smsreg keys rotate {state.family}`; "
                    "keep it in the ring until `smsreg keys status` says it can be removed"
                )
            elif state.family == "code":
                warnings.append(f"{text}: their codes cannot be checked until they expire")
            else:
                warnings.append(
                    f"{text}: those API keys, sessions, invitations and recovery codes no "
                    "longer work"
                )
    return fatal, warnings
