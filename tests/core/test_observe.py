"""Every request has an id, one access line by route template, and its HTTP metrics;
/metrics needs its token when one is set."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from app.core.db import Database
from app.core.logging import JsonFormatter, redact
from app.core.observe import request_id_for
from app.main import metric_probes
from tests.conftest import count_rows, make_settings, sync_engine
from tests.fixtures.flows import PHONE_E164, check, sent_code, start
from tests.sms.fake_twilio import unused_port
from tests.staff.helpers import staff_auth


async def test_a_request_id_is_kept_when_given_and_made_when_not(client):
    given = await client.get("/healthz", headers={"X-Request-ID": "req-42.a_b"})
    assert given.headers["x-request-id"] == "req-42.a_b"
    made = await client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 16
    # Anything else a caller sends is replaced, never echoed (no header injection).
    odd = await client.get("/healthz", headers={"X-Request-ID": "a b" + "x" * 80})
    assert odd.headers["x-request-id"] not in ("a b" + "x" * 80,)
    assert len(odd.headers["x-request-id"]) == 16


@pytest.mark.parametrize(
    "given",
    ["09012345678", "order-2026120601", "+81-90-1234-5678", "090.1234.5678", "090_1234_5678"],
)
async def test_a_request_id_the_logs_would_redact_is_replaced(client, caplog, given):
    """A number in X-Request-ID never reaches a log line, and the id in the access line
    is the one the caller was given back."""
    caplog.set_level(logging.INFO, logger="smsreg.access")
    answer = await client.get("/healthz", headers={"X-Request-ID": given})
    rid = answer.headers["x-request-id"]
    assert rid != given and len(rid) == 16
    (line,) = [
        json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "smsreg.access"
    ]
    assert line["request_id"] == rid
    assert given not in caplog.text


def test_made_request_ids_never_hold_what_the_logs_redact():
    made = {request_id_for(b"") for _ in range(3000)}
    assert len(made) == 3000
    assert all(redact(rid) == rid and len(rid) == 16 for rid in made)


async def test_one_access_line_per_request_by_route_template(client, app, carrier, auth, caplog):
    caplog.set_level(logging.INFO, logger="smsreg.access")
    started = await start(client, auth)
    verification_id = started.json()["id"]
    code = await sent_code(app, carrier)
    await check(client, auth, verification_id, code, headers={"X-Request-ID": "chk-1"})
    lines = [
        json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "smsreg.access"
    ]
    assert [line["route"] for line in lines] == [
        "/v1/verifications",
        "/v1/verifications/{verification_id}/check",
    ]
    assert [line["status"] for line in lines] == [201, 200]
    assert lines[1]["request_id"] == "chk-1"
    assert all(0 <= line["duration_ms"] < 10_000 for line in lines)
    text = json.dumps(lines)
    assert verification_id not in text and code not in text and PHONE_E164[3:] not in text


async def test_every_page_is_logged_by_its_whole_path(client, caplog):
    """/my/erase and /my/receipt were logged and counted as "/erase" and "/receipt" (a
    router included in another), so a dashboard or a search for /my/ missed erasures."""
    caplog.set_level(logging.INFO, logger="smsreg.access")
    paths = ["/my/erase", "/my/receipt", "/my/records", "/console/login"]
    for path in paths:
        await client.get(path)
    lines = [
        json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "smsreg.access"
    ]
    assert [line["route"] for line in lines] == paths


@pytest.mark.parametrize("path", ["/healthz", "/v1/verifications/ver_x", "/nowhere", "/my/"])
async def test_every_answer_says_its_type_is_not_to_be_sniffed(client, path):
    """The API's answers (JSON, problems, the health checks) had no nosniff; the pages did."""
    answer = await client.get(path)
    assert answer.headers.get_list("x-content-type-options") == ["nosniff"]


async def test_http_metrics_count_by_route_template(client, auth):
    for _ in range(3):
        await client.get("/v1/verifications/ver_missing", headers=auth)
    scraped = (await client.get("/metrics")).text
    template = 'route="/v1/verifications/{verification_id}",status="404"'
    line = next(line for line in scraped.splitlines() if template in line)
    assert float(line.rsplit(" ", 1)[1]) >= 3
    assert "ver_missing" not in scraped
    assert "smsreg_outbox_messages" in scraped or "smsreg_outbox_oldest_due_seconds" in scraped


@pytest.mark.parametrize("settings_overrides", [{"metrics_token": "scrape-token-0123456789"}])
async def test_metrics_need_their_token_when_one_is_set(client):
    refused = await client.get("/metrics")
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    allowed = await client.get(
        "/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"}
    )
    assert allowed.status_code == 200 and "smsreg_http_requests_total" in allowed.text


def test_log_lines_have_milliseconds_and_keep_a_scrubbed_traceback():
    try:
        raise ValueError("failed for +819012345678")
    except ValueError:
        import sys

        record = logging.makeLogRecord(
            {"name": "smsreg.x", "levelno": 40, "levelname": "ERROR", "msg": "boom"}
        )
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert line["time"].endswith("Z") and len(line["time"].split(".")[1]) == 4  # ms and Z
    assert "ValueError" in line["traceback"] and "test_observe.py" in line["traceback"]
    assert "9012345678" not in line["traceback"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/my/", "/console/login"])
async def test_head_answers_as_get_without_a_body(client, caplog, path):
    """An uptime monitor may send HEAD to a health check or an entry page: the same
    status and headers as GET, no body; the access line says HEAD."""
    caplog.set_level(logging.INFO, logger="smsreg.access")
    got = await client.get(path)
    head = await client.head(path)
    assert head.status_code == got.status_code != 405
    assert head.content == b""
    for name in ("content-type", "content-length", "cache-control", "location"):
        assert head.headers.get(name) == got.headers.get(name), name
    lines = [r for r in caplog.records if r.name == "smsreg.access"]
    assert [r.method for r in lines] == ["GET", "HEAD"]
    assert lines[0].route == lines[1].route != "unmatched"


async def test_head_runs_no_other_get(client, app):
    """Anywhere else a HEAD is refused, never run as the GET: an export's HEAD would sign
    a checkpoint, stream the ledger and record an export for nothing delivered."""
    auditor = await staff_auth(app, client, "auditor")
    before = count_rows(app, "audit_events"), count_rows(app, "ledger_checkpoints")
    for path in ("/v1/ledger/export?format=jsonl", "/v1/ledger/verify", "/v1/verifications"):
        answer = await client.head(path, headers=auditor)
        assert answer.status_code == 405, path
    assert (count_rows(app, "audit_events"), count_rows(app, "ledger_checkpoints")) == before


async def test_metrics_are_scraped_while_the_database_does_not_answer(client, app, auth, tmp_path):
    """An outage is when the counters (5xx, pool use) matter most: the probes that read
    the database say they could not, and the rest is scraped as ever."""
    await client.get("/v1/verifications/ver_missing", headers=auth)
    away = make_settings(f"postgresql+psycopg://postgres@127.0.0.1:{unused_port()}/x", tmp_path)
    gone = Database.from_settings(away)
    app.state.metric_probes = metric_probes(gone, app.state.ctx.clock)
    try:
        scraped = await client.get("/metrics")
    finally:
        await gone.dispose()
    assert scraped.status_code == 200, scraped.text
    assert 'route="/v1/verifications/{verification_id}",status="404"' in scraped.text
    assert 'smsreg_metrics_probe_up{probe="outbox_gauges"} 0.0' in scraped.text
    assert "smsreg_outbox_messages{" not in scraped.text


@contextlib.contextmanager
def silent_database() -> Iterator[int]:
    """A port that takes connections and never answers: a hung or partitioned host."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(16)
    try:
        yield listening.getsockname()[1]
    finally:
        listening.close()


async def test_readiness_and_metrics_answer_soon_when_the_database_never_does(
    client, app, tmp_path
):
    """A host that takes the connection and never answers held /readyz and /metrics
    for the pool's 60 s, past a load balancer's and a scraper's patience."""
    with silent_database() as port:
        away = make_settings(f"postgresql+psycopg://postgres@127.0.0.1:{port}/x", tmp_path)
        hung = Database.from_settings(away)
        held, app.state.db = app.state.db, hung
        app.state.metric_probes = metric_probes(hung, app.state.ctx.clock)
        try:
            started = time.monotonic()
            ready = await client.get("/readyz")
            scraped = await client.get("/metrics")
            took = time.monotonic() - started
        finally:
            app.state.db = held
            await hung.dispose()
    assert ready.status_code == 503, ready.text
    assert scraped.status_code == 200
    assert 'smsreg_metrics_probe_up{probe="outbox_gauges"} 0.0' in scraped.text
    assert took < 10, took


async def test_readiness_survives_a_pooled_connection_the_server_dropped(client, app):
    """After the server ended the pooled connections (a restart, a terminated backend),
    the next /readyz answered 503 though the database answered: one blip took a replica
    out of a load balancer that pulls it after one failed check."""
    db = app.state.db
    if db.sqlite:
        pytest.skip("connections are dropped by the PostgreSQL server")
    assert (await client.get("/readyz")).status_code == 200  # a pooled connection now
    async with db.transaction() as tx:
        pid = (await tx.execute(sa.text("SELECT pg_backend_pid()"))).scalar()
    with sync_engine(app).connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    assert (await client.get("/readyz")).status_code == 200
