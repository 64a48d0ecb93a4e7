"""The `smsreg` command: serve, migrate, worker, API keys, OpenAPI export."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
import yaml

from app.clients import service as clients
from app.clients.cli import api_keys_cli
from app.clients.scopes import DEFAULT_SCOPES
from app.core import cli_support, migrations
from app.core.cli_support import CLI_ACTOR
from app.core.cli_support import load_settings as _settings
from app.core.config import Settings
from app.core.context import Context
from app.core.crypto import KEY_ID_PATTERN
from app.core.key_material import new_key
from app.core.migrations import upgrade
from app.keys.cli import install as install_key_commands
from app.keys.cli import startup_check as check_key_usage
from app.ledger.cli import ledger_cli
from app.models import TABLES
from app.retention.cli import purge
from app.sms.cli import sms_cli
from app.staff.cli import staff_cli
from app.staff.credentials_cli import credentials_cli
from app.verification.cli import pumping_cli

log = logging.getLogger("smsreg.worker")
cli = typer.Typer(help="smsreg: SMS verification and phone-number registry.", no_args_is_help=True)
cli.add_typer(api_keys_cli, name="api-keys")
secrets_cli = typer.Typer(
    help="Secret key rings (phone, index, code, token).", no_args_is_help=True
)
cli.add_typer(secrets_cli, name="keys")
install_key_commands(secrets_cli)
cli.add_typer(pumping_cli, name="pumping")
cli.add_typer(sms_cli, name="sms")
cli.add_typer(staff_cli, name="staff")
cli.add_typer(credentials_cli, name="credentials")
cli.add_typer(ledger_cli, name="ledger")


@cli.command()
def migrate() -> None:
    """Apply every pending Alembic migration (needs only SMSREG_DATABASE_URL)."""
    # The migration job holds the owner's credentials, not the service's secrets: it
    # reads the database URL alone.
    url = cli_support.database_url()
    newer = migrations.unknown(migrations.current_revisions(url))
    if newer:
        # Alembic would only say it cannot locate the revision.
        cli_support.refuse(
            f"the database is at revision {', '.join(newer)}, which this release does not "
            "know: a newer release migrated it. Run that release's `smsreg migrate`; this "
            "release may still serve it while replicas are replaced"
        )
    try:
        upgrade(url)
    except Exception as exc:
        if cli_support.no_privilege(exc):
            # Not the service role's missing grants: this role may not create tables.
            cli_support.refuse(
                "this database role may not change the schema: run `smsreg migrate` as the "
                "role that owns smsreg's tables (docs/operations.md, Roles)"
            )
        raise
    typer.echo("database is at the latest migration")


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="bind port")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="uvicorn worker processes")] = 1,
    migrate_first: Annotated[
        bool | None, typer.Option("--migrate/--no-migrate", help="default: on in development")
    ] = None,
) -> None:
    """Run the HTTP service (migrating first in development)."""
    import uvicorn

    from app.core.config import ConfigError
    from app.core.logging import configure_logging, logging_config
    from app.main import create_app

    settings = _settings(new_state=True)
    configure_logging(settings.log_level)
    try:
        # Every check a worker would make at start (keys, the SMS sender, the ledger's
        # signing key), made once here: a bad setting is one line and exit 2, never a
        # worker that fails and is started again for ever.
        create_app(settings)
    except ConfigError as exc:
        cli_support.refuse(str(exc))
    # Free now, or one line and exit 2 (uvicorn binds it again below).
    _bound(host or settings.host, port or settings.port, option="--port (SMSREG_PORT)").close()
    if migrate_first if migrate_first is not None else settings.environment == "development":
        cli_support.wait_for_database(settings)
        upgrade(settings.database_url)
    cli_support.require_migrated(settings, tables=TABLES)
    check_key_usage(settings)  # refuses to start without a key rows still need
    if settings.environment == "development":
        _first_dev_key(settings)
    if workers > 1:
        _shared_metrics(settings)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        # Proxy headers are the app's own middleware, from SMSREG_TRUSTED_PROXIES (empty:
        # off). uvicorn's would trust 127.0.0.1 by default, before the app could refuse.
        proxy_headers=False,
        # Applied again in every worker process: the JSON lines, redacted.
        log_config=logging_config(settings.log_level),
        access_log=False,
    )


def _shared_metrics(settings: Settings) -> None:
    """Let every worker process write its metrics where any of them answers a scrape from
    (prometheus-client's multiprocess mode); a fresh directory each start."""
    directory = Path(settings.state_dir) / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _first_dev_key(settings: Settings) -> None:
    if cli_support.call(clients.count) > 0:
        return
    new = cli_support.call(
        clients.create, name="development", scopes=list(DEFAULT_SCOPES), created_by=CLI_ACTOR
    )
    # The one-time display of a newly created key, as the README promises.
    typer.secho(
        "\nA development API key was created. It is shown this once; keep it:\n\n"
        f"    export SMSREG_KEY={new.token}\n",
        fg="green",
    )


@cli.command()
def worker(
    once: Annotated[bool, typer.Option(help="drain what is due, then exit")] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="serve this worker's /metrics (SMS outcomes) on this port"
        ),
    ] = None,
) -> None:
    """Send queued SMS from a separate process (set SMSREG_OUTBOX_DISPATCH=external)."""
    from app.core.config import ConfigError
    from app.core.logging import configure_logging
    from app.main import outbox_worker
    from app.sms.factory import build_sender

    settings = _settings()
    configure_logging(settings.log_level)
    cli_support.require_migrated(settings, tables=TABLES)
    try:
        # As `serve` checks them: a bad key or carrier setting is one line and exit 2
        # (a key's was "unexpected ConfigError", the worker started again for ever).
        check_key_usage(settings)
        db, ctx = cli_support.runtime(settings)
        outbox = outbox_worker(db, ctx, build_sender(settings))
    except ConfigError as exc:
        cli_support.refuse(str(exc))

    async def main() -> int:
        # SIGTERM (a deploy) and SIGINT: claim nothing more, finish and record the sends
        # in flight, give back the rest at once, and exit.
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, outbox.request_stop)
        try:
            if once:
                return await outbox.drain()
            log.info("outbox worker started", extra={"metrics_port": metrics_port})
            await outbox.run_forever()
            log.info("outbox worker stopped")
            return 0
        finally:
            await db.dispose()

    scrape = None if metrics_port is None else _worker_metrics(settings, ctx, metrics_port)
    try:
        handled = asyncio.run(main())
    finally:
        if scrape is not None:
            scrape()
    if once:
        typer.echo(f"handled {handled} message(s)")


def _bound(host: str, port: int, *, option: str) -> socket.socket:
    """A socket bound to ``host``:``port``, or one line naming ``option`` and exit 2 (a
    port in use was uvicorn's log line, its port masked, and exit 3)."""
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as exc:
        listening.close()
        cli_support.refuse(f"{option} {port} on {host}: {exc.strerror or type(exc).__name__}")
    return listening


def _worker_metrics(settings: Settings, ctx: Context, port: int) -> Callable[[], None]:
    """Serve /metrics for this worker process (its SMS outcomes are counted here, not in
    the service's processes), with the service's token, from a thread of its own: the
    worker's event loop and its signal handlers stay the worker's. Returns the stop."""
    import threading

    import uvicorn
    from fastapi import FastAPI

    from app.core.error_handlers import install_error_handlers
    from app.core.metrics import router as metrics_router

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    install_error_handlers(app)  # a wrong token: 401 problem, as the service answers
    app.state.ctx = ctx
    app.state.metric_probes = []  # the database is the worker loop's, not this thread's
    app.include_router(metrics_router)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        loop="asyncio",
        lifespan="off",
        access_log=False,
        log_config=None,  # the worker's logging, already set up
    )
    # Bound here, before the worker starts: a port in use is one line and exit 2, not a
    # worker that sends on while nothing can scrape it.
    listening = _bound(settings.host, port, option="--metrics-port")
    listening.listen(64)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listening]}, name="worker-metrics", daemon=True
    )
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=5)

    return stop


@cli.command()
def openapi(
    output: Annotated[Path | None, typer.Option(help="write here instead of stdout")] = None,
) -> None:
    """Print the OpenAPI document as YAML (the checked-in openapi.yaml)."""
    text = render_openapi()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)


def render_openapi() -> str:
    """The app's OpenAPI document as stable YAML."""
    from app.main import create_app

    settings = Settings(
        environment="development",  # the document is the same: placeholder keys do
        database_url="sqlite://",
        # The environment's own rings merge into these: "doc" is named as the active key.
        **{f"{family}_keys": {"doc": "A" * 44} for family in ("phone", "index", "code", "token")},  # type: ignore[arg-type]
        **{f"{family}_key_id": "doc" for family in ("phone", "index", "code", "token")},  # type: ignore[arg-type]
    )
    document = create_app(settings).openapi()
    return yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=False, allow_unicode=True)


cli.command()(purge)


@secrets_cli.command("new")
def keys_new(key_id: Annotated[str, typer.Option(help="id to give the key")] = "k1") -> None:
    """Print a fresh key ring value for one SMSREG_*_KEYS variable (shown once)."""
    if not KEY_ID_PATTERN.fullmatch(key_id):
        # The id every start would refuse: 1 to 40 letters, digits, '_', '.' or '-'.
        typer.secho("--key-id: 1 to 40 letters, digits, '_', '.' or '-'", err=True, fg="red")
        raise typer.Exit(2)
    typer.echo(json.dumps({key_id: new_key()}))


def main() -> None:
    """Entry point of the console script: an error no command caught is one line on
    stderr and exit 1, not a traceback (``SMSREG_TRACEBACK=1`` shows it)."""
    # A warning a command logs (a break-glass admin made, say) is a JSON line on stderr
    # through the redacting formatter, as the service's are; `serve` and `worker` set
    # their own level when they start.
    from app.core.logging import configure_logging

    configure_logging("WARNING")
    try:
        cli()
    except Exception as exc:
        if os.environ.get("SMSREG_TRACEBACK") == "1":
            raise
        typer.secho(f"error: {cli_support.failure(exc)}", err=True, fg="red")
        sys.exit(1)
