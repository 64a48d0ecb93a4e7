"""One error base class and the errors every area shares, each an RFC 9457 problem
(app/core/error_handlers.py renders them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://smsreg.dev/problems/"
# Where the OpenAPI document keeps the Problem schema (app/core/openapi.py puts it there).
PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"


class FieldProblem(BaseModel):
    """One field at fault: where it is, its name and what is wrong."""

    location: str = Field(description="body, query, path or header")
    field: str = Field(description="dotted name of the field, e.g. `phone`")
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details, extended with the fields at fault and, for some types,
    members of their own (each absent where its type does not send it)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] | None = None
    # The members below are sent only by the types named in each description, never as
    # null: SkipJsonSchema keeps the None default out of the document, so a generated
    # client reads each as optional and of one type.
    attempts_left: int | SkipJsonSchema[None] = Field(
        default=None, description="`invalid-code`, `attempts-exhausted`: checks left (0: none)"
    )
    retry_after: int | SkipJsonSchema[None] = Field(
        default=None,
        description="`rate-limited`, `login-throttled`: seconds to wait, as in `Retry-After`",
    )
    limit: str | int | SkipJsonSchema[None] = Field(
        default=None,
        description="`rate-limited`, `login-throttled`: the name of the limit that refused "
        "(docs/api.md, send limits); `coupon-already-redeemed`: the redemptions allowed per "
        "number",
    )
    redeemed: int | SkipJsonSchema[None] = Field(
        default=None,
        description="`coupon-already-redeemed`: the redemptions this number already made",
    )
    redemption_id: str | SkipJsonSchema[None] = Field(
        default=None,
        description="`verification-already-used`: the redemption the verification backs",
    )
    subject_ids: list[str] | SkipJsonSchema[None] = Field(
        default=None,
        description="`disclosure-provision-stopped`, `disclosure-consent-missing`, "
        "`disclosure-subject-gone`: the subjects at fault",
    )


class AppError(Exception):
    """A business error with its HTTP status; subclasses live beside their services."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"
    # Commit the transaction before raising: for refusals that must still be recorded.
    commit: ClassVar[bool] = False
    # The headers every answer of this error carries, by name, with what they say: the
    # OpenAPI document declares them on each operation that answers it.
    answer_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[FieldProblem] = (),
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = list(errors)
        self.headers = headers or {}
        self.extra = extra

    def to_problem(self) -> dict[str, Any]:
        """The problem document for this error."""
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = [error.model_dump() for error in self.errors]
        body.update(self.extra)
        return body

    @classmethod
    def openapi(cls) -> dict[str, Any]:
        """An entry for a route's ``responses=`` describing this error."""
        return problem_answer(cls.described(), headers=header_entries(cls.answer_headers))

    @classmethod
    def described(cls) -> str:
        """How the OpenAPI document names this problem: its title, then its type's slug."""
        return f"{cls.title} (`{cls.slug}`)"


# A header's value in the document: Retry-After is a number of seconds (RFC 9110 §10.2.3;
# the service never sends the date form); any other header is a plain string.
_HEADER_SCHEMAS: dict[str, dict[str, Any]] = {
    "Retry-After": {"type": "string", "pattern": "^[0-9]+$"},
    "Idempotent-Replayed": {"type": "string", "enum": ["true"]},
    "Location": {"type": "string", "format": "uri-reference"},
}


def header_entries(headers: Mapping[str, str], *, required: bool = True) -> dict[str, Any]:
    """OpenAPI header objects for headers an answer carries, by name and description."""
    return {
        name: {
            "description": description,
            "required": required,
            "schema": _HEADER_SCHEMAS.get(name, {"type": "string"}),
        }
        for name, description in headers.items()
    }


def problem_answer(description: str, *, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAPI response that is a problem document, described so."""
    answer: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
    }
    if headers:
        answer["headers"] = headers
    return answer


class InvalidInput(AppError):
    status = 422
    slug = "invalid-input"
    title = "The request has invalid fields"

    @classmethod
    def field(cls, name: str, detail: str, *, location: str = "body") -> InvalidInput:
        """An invalid-input error naming one field."""
        return cls(
            f"{name}: {detail}",
            errors=[FieldProblem(location=location, field=name, detail=detail)],
        )


class MalformedBody(AppError):
    status = 400
    slug = "malformed-body"
    title = "The body could not be read as JSON"

    @classmethod
    def body(cls, detail: str) -> MalformedBody:
        """The body at fault, and why."""
        return cls(
            f"body: {detail}", errors=[FieldProblem(location="body", field="body", detail=detail)]
        )


class UnreadableForm(MalformedBody):
    title = "The form could not be read"


class UnsupportedMediaType(AppError):
    status = 415
    slug = "unsupported-media-type"
    title = "The body is not of a media type this operation reads"


CHALLENGE = 'Bearer realm="smsreg"'


class Unauthenticated(AppError):
    status = 401
    slug = "unauthenticated"
    title = "Missing or invalid credentials"

    answer_headers = {"WWW-Authenticate": f"`{CHALLENGE}`: send a bearer token"}

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        # RFC 9110 §15.5.2: a 401 names how to authenticate. Every credential the API
        # takes is a bearer token (an API key, a staff or a subject session).
        self.headers.setdefault("WWW-Authenticate", CHALLENGE)


class Forbidden(AppError):
    status = 403
    slug = "forbidden"
    title = "Not allowed for these credentials"


class NotFound(AppError):
    status = 404
    slug = "not-found"
    title = "Not found"


class PayloadTooLarge(AppError):
    status = 413
    slug = "payload-too-large"
    title = "The request body is too large"


class MethodNotAllowed(AppError):
    """The framework's 405, as a page route answers it (an API route's is problem
    details, with the same type)."""

    status = 405
    slug = "method-not-allowed"
    title = "This method is not allowed here"


class RateLimited(AppError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"
    answer_headers = {"Retry-After": "seconds until the limit allows another try"}

    def __init__(self, detail: str, *, retry_after: int, limit: str) -> None:
        retry_after = max(1, retry_after)
        super().__init__(
            detail, headers={"Retry-After": str(retry_after)}, retry_after=retry_after, limit=limit
        )


class DatabaseUnavailable(AppError):
    status = 503
    slug = "database-unavailable"
    title = "The database does not answer: try again shortly (nothing was changed)"
    answer_headers = {"Retry-After": "`5`: seconds before trying again"}

    def __init__(self) -> None:
        super().__init__("the service could not reach its database", headers={"Retry-After": "5"})


def is_json_media_type(content_type: str) -> bool:
    """Whether a Content-Type is one FastAPI reads as JSON (``application/json``, ``+json``)."""
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


# What every authenticated route may answer before its own problems, for its OpenAPI
# `responses`: no or a bad credential (401), or one that may not do this (403).
AUTH_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: Unauthenticated.openapi(),
    403: Forbidden.openapi(),
}


# How app.core.http.StrictJsonRequest starts the JSONDecodeError of a key named twice.
DUPLICATE_KEY = "duplicate key: "
