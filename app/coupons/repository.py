"""Every query of the coupon redemptions, as fixed SQL with :name parameters."""

from __future__ import annotations

from typing import Any

from app.core.db import Row, Tx

_COLUMNS = "id, coupon_id, subscriber_id, seq, client_id, verification_id, redeemed_at"


def verification(tx: Tx, *, verification_id: str, client_id: str) -> Row | None:
    """What a redemption needs of one verification of this client, held until commit.

    Held (FOR UPDATE on PostgreSQL; SQLite's write lock is taken at BEGIN IMMEDIATE), so
    two redemptions backed by the same verification run one after the other.
    """
    sql = (
        "SELECT id, purpose, status, approved_at, subscriber_id FROM verifications "
        "WHERE id = :id AND client_id = :client_id"
    )
    if not tx.sqlite:
        sql += " FOR UPDATE"
    return tx.one(sql, {"id": verification_id, "client_id": client_id})


def subscriber(tx: Tx, *, subscriber_id: str, purpose: str) -> Row | None:
    """A subscriber and when it was verified for ``purpose`` (``verified_at`` None: never)."""
    return tx.one(
        "SELECT s.id, p.verified_at FROM subscribers s LEFT JOIN subscriber_purposes p "
        "ON p.subscriber_id = s.id AND p.purpose = :purpose WHERE s.id = :id",
        {"id": subscriber_id, "purpose": purpose},
    )


def backed_by(tx: Tx, *, verification_id: str) -> str | None:
    """The redemption a verification already backs, if any."""
    found: str | None = tx.scalar(
        "SELECT id FROM coupon_redemptions WHERE verification_id = :verification_id",
        {"verification_id": verification_id},
    )
    return found


def tally(tx: Tx, *, coupon_id: str, subscriber_id: str) -> tuple[int, int]:
    """How many redemptions of the coupon the number has, and the highest ``seq`` used."""
    row = tx.one(
        "SELECT count(*) AS n, coalesce(max(seq), 0) AS last FROM coupon_redemptions "
        "WHERE coupon_id = :coupon_id AND subscriber_id = :subscriber_id",
        {"coupon_id": coupon_id, "subscriber_id": subscriber_id},
    )
    if row is None:  # an aggregate always answers one row; for the type checker
        return 0, 0
    return int(row.n), int(row.last)


def insert(tx: Tx, row: dict[str, Any]) -> None:
    """Record one redemption."""
    tx.execute(
        f"INSERT INTO coupon_redemptions ({_COLUMNS}) VALUES (:id, :coupon_id, "  # noqa: S608 (fixed column list)
        ":subscriber_id, :seq, :client_id, :verification_id, :redeemed_at)",
        row,
    )


def list_for(tx: Tx, *, coupon_id: str, subscriber_id: str) -> list[Row]:
    """A number's redemptions of one coupon, oldest first."""
    return tx.all(
        f"SELECT {_COLUMNS} FROM coupon_redemptions "  # noqa: S608 (fixed column list)
        "WHERE coupon_id = :coupon_id AND subscriber_id = :subscriber_id ORDER BY seq",
        {"coupon_id": coupon_id, "subscriber_id": subscriber_id},
    )
