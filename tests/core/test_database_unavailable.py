"""A database that cannot be reached is a 503 database-unavailable with Retry-After, never
a 500: for the frontend, a moment to retry; for the operator, not a bug."""

from __future__ import annotations

import socket
import sqlite3

import asyncpg
import httpx
import pytest
import sqlalchemy as sa

from app.core.unavailable import database_unavailable
from app.main import create_app
from tests.conftest import make_settings
from tests.fixtures.database import POSTGRES_URL, postgres_available


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:9/test",  # nothing listens: refused
        "{server}/smsreg_no_such_database",  # the server answers; the database is gone
    ],
)
async def test_a_database_out_of_reach_is_a_503_with_retry_after(tmp_path, url):
    if "{server}" in url:
        if not postgres_available():
            pytest.skip("PostgreSQL does not answer")
        server = sa.engine.make_url(POSTGRES_URL).set(drivername="postgresql", database=None)
        url = url.format(server=server.render_as_string(hide_password=False))
    app = create_app(make_settings(url, tmp_path))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get(
            "/v1/verifications/ver_x", headers={"Authorization": "Bearer smsreg_sk_x"}
        )
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["retry-after"] == "5"
        assert answer.json()["type"].endswith("/database-unavailable")
        assert (await client.get("/healthz")).status_code == 200
    await app.state.db.dispose()


def _sqlite_error(code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("x")
    error.sqlite_errorcode = code
    return error


def _postgres_error(sqlstate: str, message: str = "x") -> Exception:
    error = Exception(message)
    error.sqlstate = sqlstate  # as asyncpg's errors carry it
    return sa.exc.DBAPIError("SELECT 1", {}, error)


def test_what_counts_as_unavailable():
    wrapped = sa.exc.OperationalError("SELECT 1", {}, _sqlite_error(sqlite3.SQLITE_BUSY))
    assert database_unavailable(wrapped)
    assert database_unavailable(_sqlite_error(sqlite3.SQLITE_FULL))
    assert database_unavailable(ConnectionRefusedError())
    assert database_unavailable(sa.exc.TimeoutError("pool"))
    assert database_unavailable(socket.gaierror("no such host"))
    for state in ("08006", "53100", "57014", "55P03", "40P01", "40001", "25006", "3D000"):
        assert database_unavailable(_postgres_error(state)), state
    assert database_unavailable(
        asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed")
    )
    closed = _postgres_error("55000", 'database "x" is not currently accepting connections')
    assert database_unavailable(closed)
    assert not database_unavailable(_postgres_error("55000", "lastval is not yet defined"))
    assert not database_unavailable(asyncpg.InterfaceError("another operation is in progress"))
    assert not database_unavailable(_postgres_error("23505"))  # a unique violation: a bug
    assert not database_unavailable(_postgres_error("42P01"))  # no such table: a bug
    # A statement that is wrong is a bug, not an outage.
    assert not database_unavailable(_sqlite_error(sqlite3.SQLITE_CONSTRAINT))
    assert not database_unavailable(sa.exc.IntegrityError("INSERT", {}, Exception("dup")))
    assert not database_unavailable(RuntimeError("boom"))
