"""Every query on campaign deliveries and their texts."""

from __future__ import annotations

from typing import Any

from app.core.db import Row, Tx

_COLUMNS = (
    "id, client_id, campaign_id, purpose, fingerprint, default_locale, status, cursor, "
    "eligible, queued, skipped, created_at, queued_at"
)


def by_campaign(tx: Tx, *, client_id: str, campaign_id: str) -> Row | None:
    """The client's delivery of a campaign, if any."""
    return tx.one(
        f"SELECT {_COLUMNS} FROM deliveries "  # noqa: S608 (fixed column list)
        "WHERE client_id = :client_id AND campaign_id = :campaign_id",
        {"client_id": client_id, "campaign_id": campaign_id},
    )


def get(
    tx: Tx, *, delivery_id: str, client_id: str | None = None, lock: bool = False
) -> Row | None:
    """One delivery (of this client, when given); ``lock`` holds it until commit."""
    sql = f"SELECT {_COLUMNS} FROM deliveries WHERE id = :id"  # noqa: S608
    params: dict[str, Any] = {"id": delivery_id}
    if client_id is not None:
        sql += " AND client_id = :client_id"
        params["client_id"] = client_id
    if lock and not tx.sqlite:
        sql += " FOR UPDATE"
    return tx.one(sql, params)


def insert(tx: Tx, row: dict[str, Any], texts: dict[str, str]) -> None:
    """A new delivery and its text per language."""
    tx.execute(
        f"INSERT INTO deliveries ({_COLUMNS}) VALUES (:id, :client_id, :campaign_id, "  # noqa: S608
        ":purpose, :fingerprint, :default_locale, :status, :cursor, :eligible, :queued, "
        ":skipped, :created_at, :queued_at)",
        row,
    )
    tx.executemany(
        "INSERT INTO delivery_texts (delivery_id, locale, body) "
        "VALUES (:delivery_id, :locale, :body)",
        [{"delivery_id": row["id"], "locale": k, "body": v} for k, v in sorted(texts.items())],
    )


def locales(tx: Tx, *, delivery_id: str) -> list[str]:
    """The languages a delivery has a text in."""
    rows = tx.all(
        "SELECT locale FROM delivery_texts WHERE delivery_id = :id ORDER BY locale",
        {"id": delivery_id},
    )
    return [row.locale for row in rows]


def save_progress(tx: Tx, row: dict[str, Any]) -> None:
    """Record how far queuing got (and that it finished)."""
    tx.execute(
        "UPDATE deliveries SET status = :status, cursor = :cursor, eligible = :eligible, "
        "queued = :queued, skipped = :skipped, queued_at = :queued_at WHERE id = :id",
        row,
    )


def count_queued(tx: Tx, *, delivery_id: str) -> int:
    """Messages written for a delivery."""
    return int(
        tx.scalar(
            "SELECT count(*) AS n FROM outbox_messages WHERE delivery_id = :id",
            {"id": delivery_id},
        )
    )


def tallies(tx: Tx, *, delivery_id: str) -> list[Row]:
    """A delivery's messages counted per outbox status and carrier state."""
    return tx.all(
        "SELECT status, delivery_status, count(*) AS n FROM outbox_messages "
        "WHERE delivery_id = :id GROUP BY status, delivery_status",
        {"id": delivery_id},
    )
