"""Twilio's delivery status callbacks: signature-checked, recorded on the outbox row.
(The webhook routes are in app.consent.inbound: a report can also withdraw a consent.)

Twilio signs each callback (X-Twilio-Signature) over the exact URL it called and the
form fields. That URL is SMSREG_PUBLIC_BASE_URL plus the path when set (the only form
that survives any proxy); otherwise the request's own, whose scheme and client come from
trusted proxies only (uvicorn's proxy-header middleware, SMSREG_TRUSTED_PROXIES).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from fastapi import Request
from twilio.request_validator import RequestValidator

from app.core.context import Context
from app.core.errors import AppError, Forbidden, InvalidInput
from app.core.sql import Sql
from app.core.tx import Tx

PATH = "/v1/sms/twilio/status"

# Callbacks arrive out of order: a later state wins over an earlier one, and a final
# state is never changed (a late "failed" does not undo "delivered", nor the reverse).
_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
}
FINAL = frozenset({"delivered", "undelivered", "failed", "canceled", "read", "partially_delivered"})
# The states that say something went wrong: only these keep an error code recorded
# before (the worker's, say no_answer) when the report carries none. Any other says the
# carrier has the message, and an earlier code would read as a failure beside it.
_FAILURES = frozenset({"undelivered", "failed", "canceled"})
_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
# The outbox's id of the message, which the sender puts in each message's callback URL.
REFERENCE = re.compile(r"msg_[0-9A-Za-z_-]{1,64}")
_ERROR_CODE = re.compile(r"[0-9]{1,10}")


class CallbacksDisabled(AppError):
    status = 404
    slug = "not-found"
    title = "Twilio callbacks are not configured"


def signed_url(request: Request, ctx: Context) -> str:
    """The URL Twilio signed: the configured public base, or the request's own."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if ctx.settings.public_base_url:
        return ctx.settings.public_base_url.rstrip("/") + path
    host = request.headers.get("host", request.url.netloc)
    return f"{request.url.scheme}://{host}{path}"


class _Message(NamedTuple):
    id: str
    delivery_status: str | None
    carrier_message_id: str | None


_COLUMNS = "SELECT id, delivery_status, carrier_message_id FROM outbox_messages"
_FIND = Sql(f"{_COLUMNS} WHERE carrier_message_id = :sid", _Message)  # noqa: S608 (fixed)
_FIND_REFERENCE = Sql(f"{_COLUMNS} WHERE id = :id", _Message)  # noqa: S608 (fixed)
# The guards are in the statement too, not only in _moves: two callbacks read the same
# state concurrently, and on PostgreSQL the second UPDATE re-checks its WHERE once the
# first commits, so a late "failed" cannot overwrite a "delivered" it raced, nor a late
# "sending" a "sent" (:rank is the new state's, above every rank when it is final).
_FINAL_LIST = ", ".join(f"'{state}'" for state in sorted(FINAL))
_RANK_OF_STORED = (
    "CASE delivery_status "
    + " ".join(f"WHEN '{state}' THEN {rank}" for state, rank in sorted(_RANK.items()))
    + " ELSE -1 END"
)
_RECORD = Sql(
    "UPDATE outbox_messages SET delivery_status = :status, "  # noqa: S608 (constants only)
    "error_code = CASE WHEN :failure THEN COALESCE(:code, error_code) ELSE :code END, "
    "carrier_message_id = COALESCE(carrier_message_id, :sid) WHERE id = :id AND "
    f"(delivery_status IS NULL OR (delivery_status NOT IN ({_FINAL_LIST}) "
    f"AND {_RANK_OF_STORED} <= :rank))"
)
_ABOVE_EVERY_RANK = max(_RANK.values()) + 1


def _moves(current: str | None, new: str) -> bool:
    """Whether a reported state replaces the stored one."""
    if current in FINAL:
        return False
    if new in FINAL:
        return True
    return _RANK[new] >= _RANK.get(current or "", -1)


class Recorded(NamedTuple):
    """What a delivery report did: found its message, and moved its state (a report
    repeated, or later than a final state, moves nothing)."""

    found: bool
    moved: bool


async def record_status(
    tx: Tx, *, sid: str, status: str, error_code: str | None, reference: str | None = None
) -> Recorded:
    """Store the carrier's delivery state on the message it belongs to.

    The message is the one the callback URL names (``reference``), else the one with
    Twilio's id. By reference, the report counts even before the worker has recorded
    Twilio's id (a fast "failed"), or when Twilio's answer to the send was lost (an
    ``unknown`` message then shows what became of it); it must not name another
    message of Twilio's than the one recorded."""
    if reference is not None:
        row = await tx.fetch_one(_FIND_REFERENCE, {"id": reference})
        if row is not None and row.carrier_message_id not in (None, sid):
            row = None
    else:
        row = await tx.fetch_one(_FIND, {"sid": sid})
    if row is None:
        return Recorded(found=False, moved=False)
    if not _moves(row.delivery_status, status):
        return Recorded(found=True, moved=False)
    rank = _ABOVE_EVERY_RANK if status in FINAL else _RANK[status]
    changed = await tx.run(
        _RECORD,
        {
            "status": status,
            "code": error_code,
            "failure": status in _FAILURES,
            "id": row.id,
            "sid": sid,
            "rank": rank,
        },
    )
    return Recorded(found=True, moved=changed == 1)


def checked_report(form: dict[str, Any]) -> tuple[str, str, str | None]:
    """The callback's message id, state and error code, each checked against what Twilio
    sends, or InvalidInput naming the field (nothing is written then)."""
    sid = str(form.get("MessageSid") or form.get("SmsSid") or "")
    status = str(form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    code = str(form.get("ErrorCode") or "") or None
    if not _SID.fullmatch(sid):
        raise InvalidInput.field(
            "MessageSid", "must be SM or MM and 32 hex digits", location="form"
        )
    if status not in _RANK and status not in FINAL:
        raise InvalidInput.field("MessageStatus", "is not a Twilio message state", location="form")
    if code is not None and not _ERROR_CODE.fullmatch(code):
        raise InvalidInput.field("ErrorCode", "must be 1 to 10 digits", location="form")
    return sid, status, code


# What Twilio posts, for the OpenAPI document: the form signed_form() reads and checks.
SIGNED_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Twilio's form, signed in its X-Twilio-Signature header",
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        },
    }
}


async def signed_form(request: Request, ctx: Context) -> dict[str, Any]:
    """The form fields Twilio posted, once its X-Twilio-Signature is checked.

    404 when no Twilio auth token is configured; 403 on a missing or wrong signature.
    Shared by every Twilio webhook (status callbacks, inbound messages).
    """
    settings = ctx.settings
    if settings.twilio_auth_token is None:
        raise CallbacksDisabled()
    body = await request.body()
    form: dict[str, Any] = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    signature = request.headers.get("x-twilio-signature", "")
    url = signed_url(request, ctx)
    # While the account's token is rotated, Twilio signs with whichever is its primary.
    tokens = (settings.twilio_auth_token, settings.twilio_secondary_auth_token)
    if not signature or not any(
        RequestValidator(token.get_secret_value()).validate(url, form, signature)
        for token in tokens
        if token is not None
    ):
        raise Forbidden("the X-Twilio-Signature does not match")
    return form
