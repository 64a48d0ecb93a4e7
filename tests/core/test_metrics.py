"""/metrics for an on-call engineer: outbox depth and age, sends and failures by error
class, limit refusals by limit, the pool; counts only, never a number or a code.

The counters are the process's own (tests share one process), so each test compares a
scrape after with a scrape before.
"""

from __future__ import annotations

import re

import httpx
import pytest

from app.sms.base import SendError
from tests.fixtures.flows import PHONE, PHONE_E164, sent_code, start

SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[str]], float]:
    """Every sample of a scrape, by name and its set of label pairs."""
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    samples = {}
    for line in answer.text.splitlines():
        found = SAMPLE.match(line)
        if found is None:
            continue
        labels = frozenset(filter(None, (found["labels"] or "").split(",")))
        samples[found["name"], labels] = float(found["value"])
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(f'{k}="{v}"' for k, v in labels.items())), 0.0)


@pytest.mark.parametrize("settings_overrides", [{"sends_per_number_hour": 1}])
async def test_a_refused_send_is_counted_by_its_limit(client, auth):
    before = await scrape(client)
    assert (await start(client, auth)).status_code == 201
    refused = await start(client, auth)
    assert refused.status_code == 429 and refused.json()["limit"] == "number_hour"
    after = await scrape(client)
    name = "smsreg_send_limit_refusals_total"
    assert value(after, name, limit="number_hour") - value(before, name, limit="number_hour") == 1


async def test_the_outbox_depth_and_age_are_read_at_scrape_time(client, app, carrier, clock, auth):
    # Every kind and state is there at 0 (a series that vanished read as "no data").
    empty = await scrape(client)
    for kind in ("code", "campaign"):
        for status in ("pending", "sending"):
            labels = frozenset({f'kind="{kind}"', f'status="{status}"'})
            assert empty[("smsreg_outbox_messages", labels)] == 0
    assert (await start(client, auth)).status_code == 201
    clock.advance(seconds=7)
    waiting = await scrape(client)
    assert value(waiting, "smsreg_outbox_messages", kind="code", status="pending") == 1
    assert value(waiting, "smsreg_outbox_oldest_due_seconds") == pytest.approx(7, abs=0.5)
    await sent_code(app, carrier)
    drained = await scrape(client)
    assert value(drained, "smsreg_outbox_messages", kind="code", status="pending") == 0
    assert value(drained, "smsreg_outbox_oldest_due_seconds") == 0


async def test_a_retry_waiting_for_its_turn_is_not_yet_due(client, app, carrier, clock, auth):
    """A message whose next try lies ahead has not waited at all: the age stays 0. How
    long it has gone unsent is its own gauge: with every try refused, the age above
    stayed 0 and the alert the operations guide recommended never fired."""
    carrier.fail_with = SendError("carrier unavailable", code="503", permanent=False)
    assert (await start(client, auth)).status_code == 201
    await app.state.outbox.drain()
    samples = await scrape(client)
    assert value(samples, "smsreg_outbox_messages", kind="code", status="pending") == 1
    assert value(samples, "smsreg_outbox_oldest_due_seconds") == 0
    for _ in range(4):  # the carrier keeps refusing, every retry when it is due
        clock.advance(seconds=30)
        await app.state.outbox.drain()
    later = await scrape(client)
    unsent = "smsreg_outbox_oldest_unsent_seconds"
    assert value(later, unsent, kind="code") == pytest.approx(120, abs=1)
    assert value(later, unsent, kind="campaign") == 0
    carrier.fail_with = None
    clock.advance(seconds=600)
    await app.state.outbox.drain()
    assert value(await scrape(client), unsent, kind="code") == 0


async def test_sends_and_failures_are_counted_by_outcome_and_error_class(
    client, app, carrier, clock, auth
):
    name = "smsreg_sms_outcomes_total"
    busy = {"carrier": "fake", "outcome": "retry", "error_class": "busy"}
    sent = {"carrier": "fake", "outcome": "sent", "error_class": "none"}
    before = await scrape(client)
    carrier.fail_with = SendError("carrier unavailable", code="503", permanent=False)
    assert (await start(client, auth)).status_code == 201
    await app.state.outbox.drain()
    carrier.fail_with = None
    clock.advance(seconds=60)
    await sent_code(app, carrier)
    after = await scrape(client)
    assert value(after, name, **busy) - value(before, name, **busy) == 1
    assert value(after, name, **sent) - value(before, name, **sent) == 1


@pytest.mark.parametrize(
    ("error", "outcome", "error_class"),
    [
        (SendError("HTTP 500", code="20500", permanent=False, unknown=True), "unknown",
         "carrier_error"),
        (SendError("HTTP 401", code="20003", permanent=False), "retry", "credentials"),
        (SendError("HTTP 429", code="20429", permanent=False), "retry", "busy"),
        (SendError("HTTP 400", code="21211", permanent=True), "failed", "refused"),
    ],
)  # fmt: skip
async def test_a_carrier_failing_mid_request_is_not_counted_as_busy(
    client, app, carrier, auth, error, outcome, error_class
):
    """A 5xx settled as unknown (never retried) and a refused token were both `busy`,
    "retried" as the docs say: an alert on a carrier losing codes read as rate limiting."""
    labels = {"carrier": "fake", "outcome": outcome, "error_class": error_class}
    before = value(await scrape(client), "smsreg_sms_outcomes_total", **labels)
    carrier.fail_with = error
    assert (await start(client, auth)).status_code == 201
    await app.state.outbox.drain()
    after = value(await scrape(client), "smsreg_sms_outcomes_total", **labels)
    assert after - before == 1


async def test_the_pool_is_shown_on_postgresql_and_no_number_ever(client, app, auth):
    assert (await start(client, auth, phone=PHONE)).status_code == 201
    answer = await client.get("/metrics")
    text = answer.text
    for digits in (PHONE_E164, PHONE_E164[3:], PHONE.replace("-", "")):
        assert digits not in text
    if app.state.db.sqlite:
        assert "smsreg_db_pool_connections" not in text
    else:
        samples = await scrape(client)
        size = value(samples, "smsreg_db_pool_connections", state="size")
        assert size == app.state.settings.db_pool_size
        assert ("smsreg_db_pool_connections", frozenset({'state="checked_out"'})) in samples
