"""A dump of the database holds neither numbers nor codes, in any form."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

from tests.conftest import sync_engine
from tests.fixtures.database import sqlite_files
from tests.fixtures.flows import check, sent_code, start

NUMBERS = ["090-1234-5678", "080-2468-1357", "070-9753-1864"]


def forms(number: str) -> list[str]:
    digits = number.replace("-", "")
    return [digits, "81" + digits[1:], digits[1:], number, digits[-8:]]


def values(app) -> set[bytes]:
    """Every single column value in the database."""
    found: set[bytes] = set()
    with sync_engine(app).connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                found.update(v if isinstance(v, bytes) else str(v).encode() for v in row)
    return found


def dump(app) -> bytes:
    """Every value of every table, as text and raw bytes, plus the SQLite files themselves."""
    engine = sync_engine(app)
    chunks: list[bytes] = []
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                for value in row:
                    chunks.append(value if isinstance(value, bytes) else str(value).encode())
    if engine.dialect.name == "sqlite" and engine.url.database:
        chunks.append(sqlite_files(engine.url.database))
    return b"\n".join(chunks)


async def test_dump_reveals_no_number_and_no_code(client, app, carrier, clock, auth):
    codes = []
    for index, number in enumerate(NUMBERS):
        headers = {"Idempotency-Key": f"order-{index}"}
        verification_id = (await start(client, auth, phone=number, headers=headers)).json()["id"]
        e164 = "+81" + number.replace("-", "")[1:]
        code = await sent_code(app, carrier, e164)
        codes.append(code)
        assert (await check(client, auth, verification_id, code)).status_code == 200
    pending = (await start(client, auth, phone="090-1111-0000")).json()["id"]
    codes.append(await sent_code(app, carrier, "+819011110000"))
    clock.advance(seconds=30)
    await client.post(f"/v1/verifications/{pending}/resend", headers=auth)

    blob = dump(app)
    for number in [*NUMBERS, "090-1111-0000"]:
        for form in forms(number):
            assert form.encode() not in blob, (
                f"a form of a number is stored in clear: {form[:3]}..."
            )
    stored = values(app)
    for code in codes:
        assert f"#{code}".encode() not in blob
        assert code.encode() not in stored
