"""The app served by a real uvicorn in a thread of the test process, on a loopback port.

The contract test talks to it over HTTP like any client, while the test keeps the two
fakes (the carrier and the clock) and can run coroutines on the server's own event loop
(``run``), so accounts, sessions and keys are made with the very database objects the
server uses, never across event loops.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI

from app.clients import service as clients
from app.clients.scopes import Scope
from app.main import create_app
from app.staff.roles import Role
from tests.conftest import make_settings
from tests.fixtures.fakes import FakeCarrier, FakeClock
from tests.fixtures.staff import CHEAP_HASHING, bearer, create_staff, open_session

T = TypeVar("T")


class LiveApp:
    """A running server: its URL and a way to act on its database from the test."""

    def __init__(self, app: FastAPI, url: str, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.url = url
        self.loop = loop

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the server's event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def client_headers(self) -> dict[str, str]:
        """Authorization of a new API key holding every scope."""

        async def created() -> str:
            async with self.app.state.db.transaction() as tx:
                new = await clients.create(
                    tx,
                    self.app.state.ctx,
                    name="contract-" + secrets.token_hex(4),
                    scopes=[scope.value for scope in Scope],
                    created_by="test",
                )
            return new.token

        return bearer(self.run(created()))

    def staff_headers(self, role: Role) -> dict[str, str]:
        """Authorization of a new account of this role, signed in."""

        async def signed_in() -> str:
            name = f"{role.value.replace('_', '-')}-{secrets.token_hex(4)}"
            account = await create_staff(self.app, role, username=name)
            return await open_session(self.app, account)

        return bearer(self.run(signed_in()))


@contextmanager
def serve(database_url: str, tmp_path: Path, **overrides: Any) -> Iterator[LiveApp]:
    """Serve a new app on a database; stop the server (and its lifespan) on exit."""
    settings = make_settings(database_url, tmp_path, **{**CHEAP_HASHING, **overrides})
    app = create_app(settings, clock=FakeClock(), sender=FakeCarrier())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.serve(sockets=[sock]))

    thread = threading.Thread(target=run, name="contract-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("the server did not start")
        time.sleep(0.02)
    try:
        yield LiveApp(app, f"http://127.0.0.1:{port}", loop)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        loop.close()
        sock.close()
