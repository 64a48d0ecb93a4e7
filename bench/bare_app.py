"""The baseline for bench/run.py: the smallest FastAPI app that does what an endpoint does.

One ``async def`` POST route that validates a small JSON body with a pydantic model and
answers a small JSON dict, served by the same uvicorn flags as smsreg. Whatever smsreg
costs beyond this is its own work (authentication, database, crypto, phone parsing).
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, Field


class Echo(BaseModel):
    phone: str = Field(min_length=1, max_length=32)
    purpose: str = Field(min_length=1, max_length=40)


def create_app() -> FastAPI:
    app = FastAPI(title="bare")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/echo")
    async def echo(body: Echo) -> dict[str, str]:
        return {"status": "ok", "phone": body.phone, "purpose": body.purpose}

    return app
