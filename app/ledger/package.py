"""The package a released disclosure hands over: JSON and CSV, the same records.

Built in the release's transaction and shown once; only its SHA-256 is kept (in the
ledger entry), never the package, which holds the subjects' numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import orjson

from app.core.context import Context
from app.core.crypto import subscriber_aad
from app.core.csvsafe import text_cell
from app.core.tx import Tx
from app.ledger import canonical
from app.ledger import subjects_repository as subjects
from app.ledger.errors import SubjectGone
from app.models.ledger import DisclosureRequest
from app.models.subscriber import Subscriber

PACKAGE_FORMAT = "smsreg-disclosure-package/1"


def _value(ctx: Context, item: str, subscriber: Subscriber, purposes: dict[str, list[str]]) -> Any:
    if item == "phone_number":
        return ctx.keys.decrypt(
            subscriber.phone_ciphertext,
            key_id=subscriber.phone_key_id,
            context=subscriber_aad(subscriber.phone_index),
        )
    if item == "subscriber_id":
        return subscriber.id
    if item == "verified_purposes":
        return purposes.get(subscriber.id, [])
    if item == "registered_at":
        return canonical.timestamp(subscriber.created_at)
    if item == "last_verified_at":
        return canonical.timestamp(subscriber.last_verified_at)
    raise ValueError(f"unknown data item {item!r}")


async def build(
    tx: Tx, ctx: Context, *, request: DisclosureRequest, seq: int, released_at: dt.datetime
) -> tuple[bytes, bytes]:
    """The package for the recipient, as JSON and as CSV (the same records)."""
    items = request.data_items
    found = await subjects.subscribers_by_id(tx, request.subject_ids)
    gone = sorted(set(request.subject_ids) - set(found))
    if gone:
        raise SubjectGone(subject_ids=gone)
    purposes = (
        await subjects.purposes_of(tx, request.subject_ids) if "verified_purposes" in items else {}
    )
    records = [
        {item: _value(ctx, item, found[subject], purposes) for item in items}
        for subject in request.subject_ids
    ]
    document = {
        "format": PACKAGE_FORMAT,
        "request_id": request.id,
        "ledger_seq": seq,
        "released_at": canonical.timestamp(released_at),
        "recipient": {
            "organisation": request.recipient_organisation,
            "officer": request.recipient_officer,
            "contact": request.recipient_contact,
        },
        "legal_basis": request.legal_basis,
        "purpose": request.purpose,
        "request_reference": request.request_reference,
        "data_items": items,
        "records": records,
    }
    as_json = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(items)
    for record in records:
        writer.writerow(
            [
                # Numbers kept as text: a spreadsheet must not turn +8190... into 8.19E+11.
                text_cell(" ".join(value) if isinstance(value, list) else str(value))
                for value in record.values()
            ]
        )
    return as_json, buffer.getvalue().encode()
