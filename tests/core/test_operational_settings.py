"""Settings an operator tunes for a fleet reach the process: the pool size, the statement
and lock timeouts; and the logs stay quiet about third-party chatter."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from app.core.logging import configure_logging

TIMEOUTS = {"db_statement_timeout_ms": 300, "db_lock_timeout_ms": 250, "db_pool_size": 3}


@pytest.mark.parametrize("settings_overrides", [TIMEOUTS])
async def test_the_pool_and_the_timeouts_come_from_settings(app):
    db = app.state.db
    if db.sqlite:
        pytest.skip("PostgreSQL settings: SQLite has no server-side timeouts or pool")
    async with db.transaction() as tx:
        shown = [
            (await tx.execute(sa.text(f"SHOW {name}"))).scalar_one()
            for name in ("statement_timeout", "lock_timeout")
        ]
    assert shown == ["300ms", "250ms"]
    assert db.pool_status()["size"] == 3
    assert db.pool_status()["overflow"] == 0  # none beyond the pool (not minus its size)
    with pytest.raises(Exception, match="statement timeout"):
        async with db.transaction() as tx:
            await tx.execute(sa.text("SELECT pg_sleep(2)"))


@pytest.fixture
def restored_logging():
    """configure_logging changes process-wide state: put it back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    names = ("twilio", "twilio.http_client", "httpx", "urllib3", "asyncio")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


def test_third_party_loggers_write_warnings_only(restored_logging, capsys):
    configure_logging("INFO")
    logging.getLogger("twilio.http_client").info("-- BEGIN Twilio API Request --")
    logging.getLogger("httpx").info("HTTP Request: POST https://api.twilio.com")
    logging.getLogger("smsreg.test").info("ours")
    logging.getLogger("twilio.http_client").warning("a warning")
    written = capsys.readouterr().err
    assert "Twilio API Request" not in written and "HTTP Request" not in written
    assert '"message":"ours"' in written and '"message":"a warning"' in written
