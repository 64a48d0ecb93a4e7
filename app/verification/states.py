"""What a verification's state is at an instant, and the errors that refuse it."""

from __future__ import annotations

import datetime as dt

from app.core.errors import AppError, FieldProblem, NotFound, RateLimited
from app.verification import repository as repo
from app.verification.pumping import PrefixBlocked
from app.verification.repository import ForCheck, Verification


class VerificationNotFound(NotFound):
    slug = "verification-not-found"
    title = "No such verification"


class VerificationExpired(AppError):
    status = 410
    slug = "verification-expired"
    title = "The code has expired; start a new verification"


class VerificationSuperseded(AppError):
    status = 410
    slug = "verification-superseded"
    title = "A newer verification for this number replaced this one"


class AlreadyApproved(AppError):
    status = 409
    slug = "verification-already-approved"
    title = "This verification was already approved; a code works once"


class AttemptsExhausted(AppError):
    # Gone, as an expired or superseded verification is: the attempts never come back,
    # so waiting and trying again (what a 429 tells a client, and what HTTP libraries do
    # on their own) never helps. The remedy is theirs too: start a new verification.
    status = 410
    slug = "attempts-exhausted"
    title = "Too many wrong codes; start a new verification"


class WrongCode(AppError):
    status = 422
    slug = "invalid-code"
    title = "The code is not correct"
    commit = True  # the failed attempt must count even though the request fails


class IdempotencyKeyReused(AppError):
    status = 422
    slug = "idempotency-key-reused"
    title = "This Idempotency-Key was used for a different request"

    def __init__(self) -> None:
        detail = "was used for a different request: send a new key for a new request"
        super().__init__(
            errors=[FieldProblem(location="header", field="Idempotency-Key", detail=detail)]
        )


# What refusal() answers, for the routes that check or resend a verification.
NOT_PENDING: tuple[type[AppError], ...] = (
    AlreadyApproved,
    VerificationExpired,
    VerificationSuperseded,
    AttemptsExhausted,
)


# What refuses a send (a start or a resend): a send limit, or the pumping guard's block.
SEND_REFUSALS: tuple[type[AppError], ...] = (RateLimited, PrefixBlocked)


def state(row: Verification | ForCheck | repo.Before, now: dt.datetime) -> str:
    """pending, approved, expired, exhausted or superseded."""
    if row.status != "pending":
        return row.status
    if row.expires_at <= now:
        return "expired"
    if row.attempts >= row.max_attempts:
        return "exhausted"
    return "pending"


def refusal(row: Verification | ForCheck | repo.Before, now: dt.datetime) -> AppError:
    """Why a verification that is no longer pending refuses a check or a resend."""
    now_state = state(row, now)
    if now_state == "approved":
        return AlreadyApproved()
    if now_state == "expired":
        return VerificationExpired()
    if now_state == "superseded":
        return VerificationSuperseded()
    return AttemptsExhausted(attempts_left=0)
