"""/v1/ledger: the public keys that verify the ledger's checkpoints (anonymous).

The disclosure workflow and the auditors' export and verify endpoints need staff
sessions; they are wired where those live (see app/ledger/auditor.py, workflow.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from app.core.deps import runtime_of
from app.ledger import signing

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])


class PublicKeyPublic(BaseModel):
    key_id: str
    algorithm: str = Field(description="always `Ed25519`")
    public_key: str = Field(description="base64 of the 32-byte raw public key")
    active: bool = Field(description="whether new checkpoints are signed with it")


class PublicKeysPublic(BaseModel):
    keys: list[PublicKeyPublic]


@router.get(
    "/public-keys",
    response_model=PublicKeysPublic,
    summary="Public keys that verify the ledger's signed checkpoints (no credentials needed)",
)
async def public_keys(request: Request, response: Response) -> PublicKeysPublic:
    ring = signing.ring(runtime_of(request).ctx.settings)
    response.headers["Cache-Control"] = "public, max-age=300"
    return PublicKeysPublic(
        keys=[
            PublicKeyPublic(
                key_id=key_id,
                algorithm=signing.ALGORITHM,
                public_key=public,
                active=key_id == ring.active_id,
            )
            for key_id, public in sorted(ring.public_raw().items())
        ]
    )
