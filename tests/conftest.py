"""Shared fixtures: settings, app, client, API keys, the fake carrier and clock."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from app.clients import service as clients
from app.core.config import Settings
from app.core.context import Context
from app.core.db import create_sync_engine
from app.core.sql import lock_key
from app.core.tx import Tx
from app.main import attach_runtime, create_app

# answers_documented is autouse: imported here, it runs for every test.
from tests.fixtures.answers import answers_documented, recorded  # noqa: F401
from tests.fixtures.fakes import FakeCarrier, FakeClock

pytest_plugins = ["tests.fixtures.database", "tests.fixtures.live"]
P = ParamSpec("P")
T = TypeVar("T")

FAMILIES = ("phone", "index", "code", "token")
# Fixed per run, distinct per family; never a real deployment's keys.
TEST_KEYS = {  # fixed, and random-looking as production asks of every key
    family: base64.b64encode(hashlib.sha256(f"smsreg test {family}".encode()).digest()).decode()
    for family in FAMILIES
}
# The ledger's Ed25519 signing seed: fixed too, so create_app keeps the very settings object
# a test passes (a generated development key would make it a copy).
# Random-looking as production asks of it too (a seed anyone can guess signs forgeries).
TEST_LEDGER_SEED = base64.b64encode(hashlib.sha256(b"smsreg test ledger").digest()).decode()


class IsolatedSettings(Settings):
    """Settings from what a test passes only: neither the environment nor a ``.env`` file
    reaches them, so a developer's own configuration cannot change a test (and reading
    both for each test's app cost more than building the app)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def make_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Development settings on the given database with fixed test keys."""
    values: dict[str, Any] = {
        "environment": "development",
        "database_url": database_url,
        "state_dir": tmp_path / "state",
        "console_print": False,
        "outbox_dispatch": "external",
        # TOTP is required for privacy officers and admins by default; tests of other
        # areas log in with a password only. tests/credentials/test_totp.py turns it back on.
        "totp_required_roles": [],
    }
    for family in FAMILIES:
        values[f"{family}_keys"] = {"t1": TEST_KEYS[family]}
        values[f"{family}_key_id"] = "t1"
    values["ledger_signing_keys"] = {"t1": TEST_LEDGER_SEED}
    values["ledger_signing_key_id"] = "t1"
    values.update(overrides)
    return IsolatedSettings(**values)


@pytest.fixture(autouse=True)
def no_unhandled_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test during which the app answered an unexpected error (a 500): the request
    observer answers it instead of letting it reach the test, so a test that does not
    look at the status would not see it. A test expecting one says so with
    ``@pytest.mark.unhandled_error``."""
    seen: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == "unhandled error":
                seen.append(f"{getattr(record, 'error_type', '?')}\n{getattr(record, 'stack', '')}")

    catch = Catch(logging.ERROR)
    logger = logging.getLogger("smsreg")
    logger.addHandler(catch)
    try:
        yield
    finally:
        logger.removeHandler(catch)
    if seen and request.node.get_closest_marker("unhandled_error") is None:
        pytest.fail("the app answered 500 (unhandled error):\n" + "\n".join(seen))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def carrier() -> FakeCarrier:
    return FakeCarrier()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its app."""
    return {}


@pytest.fixture
def settings(database_url: str, tmp_path: Path, settings_overrides: dict[str, Any]) -> Settings:
    return make_settings(database_url, tmp_path, **settings_overrides)


# Apps by what shapes them (create_app reads these settings; the rest is the runtime).
_APPS: dict[tuple[object, ...], FastAPI] = {}


def _shape(settings: Settings) -> tuple[object, ...]:
    return (settings.environment, tuple(settings.trusted_proxies), settings.max_body_bytes)


@pytest.fixture
def app(settings: Settings, clock: FakeClock, carrier: FakeCarrier) -> Iterator[FastAPI]:
    """The app, with this test's own database connection, context, clock and carrier.

    Building an app's routes (FastAPI does it on an app's first request) cost more than
    most tests, so tests share an app built for the same shape of settings and each gets
    a runtime of its own on it (app.main.attach_runtime). A test that adds a route needs
    an app of its own: ``fresh_app``."""
    shape = _shape(settings)
    shared = _APPS.get(shape)
    if shared is None:
        shared = _APPS[shape] = create_app(settings, clock=clock, sender=carrier)
    else:
        attach_runtime(shared, settings, clock=clock, sender=carrier)
    before = _built(shared)
    yield shared
    if _built(shared) != before:
        del _APPS[shape]  # the next test of this shape builds a clean one
        pytest.fail("a test changed a shared app (its routes, dependency overrides, "
                    "error handlers or middleware): use fresh_app")  # fmt: skip


def _built(app: FastAPI) -> tuple[object, ...]:
    """What a test must leave as it found it on a shared app."""
    return (
        list(app.router.routes),
        dict(app.dependency_overrides),
        dict(app.exception_handlers),
        list(app.user_middleware),
    )


@pytest.fixture
def fresh_app(settings: Settings, clock: FakeClock, carrier: FakeCarrier) -> FastAPI:
    """An app of the test's own, for a test that changes it (adds a route)."""
    return create_app(settings, clock=clock, sender=carrier)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # Recorded: every answer a test gets must be in openapi.yaml (tests/fixtures/answers.py).
    transport = httpx.ASGITransport(app=recorded(app), client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
    await app.state.db.dispose()


async def call(
    app: FastAPI,
    fn: Callable[Concatenate[Tx, Context, P], Awaitable[T]],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run one service function in one transaction of the app's database, as a route does."""
    async with app.state.db.transaction() as tx:
        return await fn(tx, app.state.ctx, *args, **kwargs)


@pytest.fixture
async def api_key(app: FastAPI) -> str:
    """A live key with the default scopes."""
    new = await call(
        app,
        clients.create,
        name="coupon-frontend",
        scopes=["verifications:write"],
        created_by="test",
    )
    return new.token


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@functools.cache
def engine_for(url: str) -> sa.Engine:
    """A synchronous engine on a database, for tests that look at rows directly."""
    return create_sync_engine(url)


@contextlib.contextmanager
def advisory_lock_held(app: FastAPI, name: str) -> Iterator[None]:
    """The service's lock ``name`` (Tx.lock), held by another PostgreSQL session until the
    block ends: a unit that takes it waits there, so a test can start a rival meanwhile.
    Skips on SQLite, where units run one at a time."""
    engine = sync_engine(app)
    if engine.dialect.name != "postgresql":
        pytest.skip("units run one at a time on SQLite")
    key = {"k": lock_key(name)}
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), key)
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), key)
            conn.commit()


def sync_engine(app: FastAPI) -> sa.Engine:
    """A synchronous engine on the app's database, for tests that look at rows directly."""
    return engine_for(app.state.db.url)


def count_rows(app: FastAPI, table: str) -> int:
    """Rows in a table, read straight from the database."""
    with sync_engine(app).connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608


WRITTEN_TABLES = (
    "verifications",
    "outbox_messages",
    "rate_limit_hits",
    "send_windows",
    "idempotency_records",
    "subscribers",
    "subscriber_purposes",
)


async def snapshot(app: FastAPI) -> dict[str, int]:
    """Row counts of every table a request could write to (audit excluded: see callers),
    once the shared counters counted so far are written."""
    await app.state.ctx.counters.flush()
    return {table: count_rows(app, table) for table in (*WRITTEN_TABLES, "audit_events")}
