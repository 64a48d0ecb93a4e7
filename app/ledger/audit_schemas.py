"""Request and response shapes of the auditors' tools (export, verify, checkpoints) and of
the public keys."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from app.core.instants import Instant
from app.ledger import canonical
from app.ledger.rules import LegalBasis, recipient_key
from app.ledger.schemas import Name, SubjectId


class ExportQuery(BaseModel):
    """What an export selects, and how it is written; every filter is optional."""

    format: Literal["jsonl", "csv"] = "jsonl"
    since: Instant | None = Field(None, description="entries recorded at or after (RFC 3339)")
    until: Instant | None = Field(None, description="entries recorded before (RFC 3339)")
    # Checked as a request's organisation is, so the name a ledger entry shows (with its
    # ideographic spaces, say) can be pasted here as it is.
    recipient: Name | None = Field(
        None, description="the recipient organisation, however it is typed"
    )
    basis: LegalBasis | None = Field(None, description="one legal basis")
    subject: SubjectId | None = Field(None, description="entries naming this subscriber")

    @field_validator("until")
    @classmethod
    def _after_since(cls, value: dt.datetime | None, info: ValidationInfo) -> dt.datetime | None:
        since = info.data.get("since")
        if value is not None and since is not None and value <= since:
            raise ValueError("must be after since")
        return value

    @property
    def selective(self) -> bool:
        """Whether any filter is set."""
        filters = (self.since, self.until, self.recipient, self.basis, self.subject)
        return any(value is not None for value in filters)

    @property
    def recipient_key(self) -> str | None:
        """The recipient filter as entries store it."""
        return None if self.recipient is None else recipient_key(self.recipient)

    def describe(self) -> dict[str, Any]:
        """The filters as an export's header states them."""
        return {
            "since": None if self.since is None else canonical.timestamp(self.since),
            "until": None if self.until is None else canonical.timestamp(self.until),
            "recipient": self.recipient_key,
            "legal_basis": self.basis,
            "subject_id": self.subject,
        }


class CheckpointPublic(BaseModel):
    """A signed checkpoint: the head it commits to, when, and the signature."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    seq: int
    head_hash: str
    created_at: dt.datetime
    key_id: str
    signature: str = Field(description="base64 Ed25519 signature; keys at /v1/ledger/public-keys")


class ProblemAt(BaseModel):
    """The first broken position of the chain and what broke there."""

    seq: int
    kind: str = Field(
        description="changed, removed, reordered, truncated, bad-signature, index, "
        "malformed, filtered, uncovered, unrecorded or unbacked"
    )
    detail: str


class VerifyReportPublic(BaseModel):
    """The outcome of walking the chain and checking every checkpoint signature."""

    ok: bool
    source: str
    entries: int
    links: int
    checkpoints: int = Field(description="checkpoints whose signatures verify")
    first_seq: int | None
    last_seq: int | None
    complete: bool
    anchor_seq: int | None = Field(description="the signed purge anchor the chain starts from")
    covered_to: int | None = Field(description="how far signed checkpoints reach")
    problem: ProblemAt | None
    notes: list[str]


class PublicKeyPublic(BaseModel):
    """One public key of the ledger's signing ring."""

    key_id: str
    algorithm: str = Field(description="always `Ed25519`")
    public_key: str = Field(description="base64 of the 32-byte raw public key")
    active: bool = Field(description="whether new checkpoints are signed with it")


class PublicKeysPublic(BaseModel):
    """Every public key that verifies the ledger's checkpoints."""

    keys: list[PublicKeyPublic]
