"""Helpers for the data-subject tests: a subject session opened the real way, by SMS."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from tests.fixtures.flows import sent_code


async def send_code(
    client: httpx.AsyncClient, e164: str, *, path: str = "/v1/subject/verifications", **extra: Any
) -> str:
    """Ask for a self-service code; the verification id."""
    response = await client.post(path, json={"phone": e164, **extra.pop("body", {})}, **extra)
    assert response.status_code == 201, response.text
    verification_id: str = response.json()["verification_id"]
    return verification_id


async def open_session(
    client: httpx.AsyncClient, app: FastAPI, carrier: Any, e164: str
) -> dict[str, str]:
    """Prove control of ``e164`` by SMS and open a subject session; its headers."""
    verification_id = await send_code(client, e164)
    code = await sent_code(app, carrier, e164)
    response = await client.post(
        "/v1/subject/sessions", json={"verification_id": verification_id, "code": code}
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}
