"""Checking codes: single use, attempt limits, expiry, binding, and concurrency."""

from __future__ import annotations

import asyncio
import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.clients import service as clients
from app.core.db import Database
from app.core.errors import AppError
from app.verification import checking
from app.verification.schemas import VerificationCheck
from tests.conftest import call, sync_engine
from tests.fixtures.flows import PHONE_E164, check, sent_code, start
from tests.staff.helpers import execute, rows


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


async def test_right_code_approves_and_registers_the_number(client, app, carrier, auth):
    started = await start(client, auth)
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["status"] == "pending"
    assert body["phone_masked"] == "+81 90-****-5678"
    assert body["attempts_left"] == 5
    assert "phone" not in body and PHONE_E164 not in started.text

    code = await sent_code(app, carrier)
    assert len(code) == 6
    answer = await check(client, auth, body["id"], code)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["status"] == "approved"
    assert result["subscriber_id"].startswith("sub_")

    # The same number verified again is the same subscriber.
    again = await start(client, auth, purpose="coupon_delivery")
    code = await sent_code(app, carrier)
    second = await check(client, auth, again.json()["id"], code)
    assert second.json()["subscriber_id"] == result["subscriber_id"]


async def test_code_works_once(client, app, carrier, auth):
    verification_id = (await start(client, auth)).json()["id"]
    code = await sent_code(app, carrier)
    assert (await check(client, auth, verification_id, code)).status_code == 200
    reused = await check(client, auth, verification_id, code)
    assert reused.status_code == 409
    assert reused.json()["type"].endswith("/verification-already-approved")


async def test_wrong_codes_count_down_then_lock_even_the_right_code(client, app, carrier, auth):
    verification_id = (await start(client, auth)).json()["id"]
    code = await sent_code(app, carrier)
    for left in (4, 3, 2, 1, 0):
        answer = await check(client, auth, verification_id, wrong(code))
        assert answer.status_code == 422
        problem = answer.json()
        assert problem["type"].endswith("/invalid-code")
        assert problem["attempts_left"] == left
        assert problem["errors"][0]["field"] == "code"
    locked = await check(client, auth, verification_id, code)
    # Gone like an expired code, not 429: waiting and trying again never helps.
    assert locked.status_code == 410
    assert locked.json()["type"].endswith("/attempts-exhausted")
    assert locked.json()["attempts_left"] == 0
    assert "Retry-After" not in locked.headers
    state = await client.get(f"/v1/verifications/{verification_id}", headers=auth)
    assert state.json()["status"] == "exhausted"


@pytest.mark.parametrize("typed", ["12345", "1234567"])
async def test_a_code_of_the_wrong_length_is_no_try(client, app, carrier, auth, typed):
    """It cannot be the code (the SMS shows how long it is): said so, and not counted."""
    verification_id = (await start(client, auth)).json()["id"]
    code = await sent_code(app, carrier)
    answer = await check(client, auth, verification_id, typed)
    assert answer.status_code == 422, answer.text
    assert answer.json()["type"].endswith("/invalid-input")
    assert answer.json()["errors"] == [
        {"location": "body", "field": "code", "detail": "must be 6 digits"}
    ]
    state = await client.get(f"/v1/verifications/{verification_id}", headers=auth)
    assert state.json()["attempts_left"] == 5
    assert (await check(client, auth, verification_id, code)).status_code == 200


async def test_expiry_boundary(client, app, carrier, clock, auth):
    verification_id = (await start(client, auth)).json()["id"]
    code = await sent_code(app, carrier)
    clock.advance(seconds=600)  # exactly the lifetime: no longer valid
    expired = await check(client, auth, verification_id, code)
    assert expired.status_code == 410
    assert expired.json()["type"].endswith("/verification-expired")


async def test_last_microsecond_of_lifetime_still_works(client, app, carrier, clock, auth):
    verification_id = (await start(client, auth)).json()["id"]
    code = await sent_code(app, carrier)
    clock.advance(seconds=600, microseconds=-1)
    assert (await check(client, auth, verification_id, code)).status_code == 200


async def test_code_is_bound_to_its_verification(client, app, carrier, auth):
    first = (await start(client, auth, phone="090-1111-2222")).json()["id"]
    second = (await start(client, auth, phone="090-3333-4444")).json()["id"]
    first_code = await sent_code(app, carrier, "+819011112222")
    second_code = await sent_code(app, carrier, "+819033334444")
    if first_code != second_code:  # 1 in 10^6 they coincide; the binding is what matters
        assert (await check(client, auth, second, first_code)).status_code == 422
    assert (await check(client, auth, first, first_code)).status_code == 200
    assert (await check(client, auth, second, second_code)).status_code == 200


async def test_new_start_supersedes_the_old_code(client, app, carrier, clock, auth):
    old = (await start(client, auth)).json()["id"]
    old_code = await sent_code(app, carrier)
    new = (await start(client, auth)).json()["id"]
    superseded = await check(client, auth, old, old_code)
    assert superseded.status_code == 410
    assert superseded.json()["type"].endswith("/verification-superseded")
    assert (await check(client, auth, new, await sent_code(app, carrier))).status_code == 200


def _missed_each_other(app, older: str) -> None:
    """Leave ``older`` pending beside a newer start for its number: what two starts that
    run at once on PostgreSQL leave, each in one statement that cannot see the other's
    verification (the concurrent test below makes it happen for real)."""
    execute(app, "UPDATE verifications SET status = 'pending' WHERE id = :id", id=older)


async def test_of_two_starts_that_missed_each_other_only_the_newer_code_is_valid(
    client, app, carrier, auth
):
    older = (await start(client, auth)).json()["id"]
    older_code = await sent_code(app, carrier)
    newer = (await start(client, auth)).json()["id"]
    _missed_each_other(app, older)
    read = await client.get(f"/v1/verifications/{older}", headers=auth)
    assert read.json()["status"] == "superseded"
    refused = await check(client, auth, older, older_code)
    assert refused.status_code == 410, refused.text
    assert refused.json()["type"].endswith("/verification-superseded")
    resend = await client.post(f"/v1/verifications/{older}/resend", headers=auth)
    assert resend.status_code == 410
    assert (await check(client, auth, newer, await sent_code(app, carrier))).status_code == 200
    # The older stays superseded once the newer is approved.
    assert (await check(client, auth, older, older_code)).status_code == 410


async def test_a_start_that_read_the_clock_first_but_wrote_last_stays_valid(
    client, app, carrier, clock, auth
):
    """The second start superseded the first as it wrote, but its start time is the
    earlier (it read the clock first, or its replica's clock is behind): its code is the
    one that works, and the first's superseded row does not shadow it."""
    first = (await start(client, auth)).json()["id"]
    clock.advance(seconds=-0.005)
    second = (await start(client, auth)).json()["id"]
    read = await client.get(f"/v1/verifications/{second}", headers=auth)
    assert read.json()["status"] == "pending"
    assert (await client.get(f"/v1/verifications/{first}", headers=auth)).json()[
        "status"
    ] == "superseded"
    assert (await check(client, auth, second, await sent_code(app, carrier))).status_code == 200


async def test_the_older_of_two_starts_that_missed_each_other_is_not_sent(
    client, app, carrier, auth
):
    older = (await start(client, auth)).json()["id"]
    await start(client, auth)
    _missed_each_other(app, older)
    await app.state.outbox.drain()
    assert len(carrier.sent) == 1
    assert rows(app, "SELECT status FROM outbox_messages WHERE verification_id = :v",
                v=older) == [{"status": "expired"}]  # fmt: skip


@pytest.mark.parametrize(
    "settings_overrides",
    [{"sends_per_number_hour": 100, "sends_per_number_day": 100, "sends_per_ip_hour": 100}],
)
async def test_starts_for_one_number_at_once_leave_one_valid_code(
    client, app, carrier, auth, settings_overrides
):
    """Run at once (on PostgreSQL, each on its own connection), starts for one number
    leave exactly one verification whose code is accepted."""
    for round_ in range(3):
        phone = f"090-5555-{round_:04d}"
        answers = await asyncio.gather(*(start(client, auth, phone=phone) for _ in range(8)))
        ids = [answer.json()["id"] for answer in answers if answer.status_code == 201]
        assert len(ids) == 8
        await app.state.outbox.drain()
        by_verification = {
            row["verification_id"]: row["status"]
            for row in rows(app, "SELECT verification_id, status FROM outbox_messages")
        }
        codes = [message.code for message in carrier.to(f"+81905555{round_:04d}")]
        approved = 0
        for verification_id in ids:
            for code in codes:
                answer = await check(client, auth, verification_id, code)
                if answer.status_code == 200:
                    approved += 1
                    break
                if answer.status_code != 422:
                    break  # superseded or spent: no code of it is valid
        assert approved == 1, (approved, by_verification)


async def test_unknown_and_foreign_verifications_are_not_found(client, app, carrier, auth):
    verification_id = (await start(client, auth)).json()["id"]
    code = await sent_code(app, carrier)
    other = await call(
        app, clients.create, name="other", scopes=["verifications:write"], created_by="test"
    )
    foreign = await check(client, {"Authorization": f"Bearer {other.token}"}, verification_id, code)
    assert foreign.status_code == 404
    missing = await check(client, auth, "ver_doesnotexist", code)
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/verification-not-found")


async def test_twenty_concurrent_right_checks_approve_exactly_once(client, app, carrier, auth):
    verification_id = (await start(client, auth)).json()["id"]
    code = await sent_code(app, carrier)
    answers = await asyncio.gather(*(check(client, auth, verification_id, code) for _ in range(20)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses.count(200) == 1, statuses
    assert set(statuses) <= {200, 409}


def _threaded_checks(app, token: str, verification_id: str, code: str, n: int) -> list[int | str]:
    """Checks from n threads, each with its own event loop and database connection: real
    concurrency on both databases."""

    def one(_: int) -> int | str:
        async def attempt() -> int | str:
            db = Database(app.state.db.url)
            try:
                async with db.transaction() as tx:
                    client = await clients.authenticate(tx, app.state.ctx, token=token)
                    await checking.check(
                        tx,
                        app.state.ctx,
                        client=client,
                        verification_id=verification_id,
                        data=VerificationCheck(code=code),
                    )
                return 200
            except AppError as exc:
                return exc.status
            finally:
                await db.dispose()

        return asyncio.run(attempt())

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


async def test_twenty_threads_with_the_right_code_approve_exactly_once(
    client, app, carrier, auth, api_key
):
    verification_id = (await start(client, auth)).json()["id"]
    code = await sent_code(app, carrier)
    results = _threaded_checks(app, api_key, verification_id, code, 20)
    assert results.count(200) == 1, results
    assert set(results) <= {200, 409}


async def test_fifty_threads_with_wrong_codes_never_get_more_than_five_tries(
    client, app, carrier, auth, api_key
):
    verification_id = (await start(client, auth)).json()["id"]
    code = await sent_code(app, carrier)
    results = _threaded_checks(app, api_key, verification_id, wrong(code), 50)
    assert results.count(422) == 5, results
    assert results.count(410) == 45
    state = await client.get(f"/v1/verifications/{verification_id}", headers=auth)
    assert state.json()["attempts_left"] == 0


@pytest.mark.parametrize("purpose", ["coupon_usage", "coupon_delivery"])
async def test_registry_records_the_purpose(client, app, carrier, auth, purpose):
    import sqlalchemy as sa

    verification_id = (await start(client, auth, purpose=purpose)).json()["id"]
    result = (await check(client, auth, verification_id, await sent_code(app, carrier))).json()
    with sync_engine(app).connect() as conn:
        rows = (
            conn.execute(
                sa.text("SELECT purpose FROM subscriber_purposes WHERE subscriber_id = :s"),
                {"s": result["subscriber_id"]},
            )
            .scalars()
            .all()
        )
    assert rows == [purpose]


async def test_data_subject_check_registers_nothing(client, app, carrier, auth):
    from tests.conftest import count_rows

    verification_id = (await start(client, auth, purpose="data_subject")).json()["id"]
    result = await check(client, auth, verification_id, await sent_code(app, carrier))
    assert result.status_code == 200
    assert result.json()["subscriber_id"] is None
    assert count_rows(app, "subscribers") == 0


async def test_expired_verification_reads_as_expired(client, app, carrier, clock, auth):
    verification_id = (await start(client, auth)).json()["id"]
    clock.advance(minutes=10)
    state = await client.get(f"/v1/verifications/{verification_id}", headers=auth)
    assert state.json()["status"] == "expired"
    assert dt.datetime.fromisoformat(state.json()["expires_at"]) <= clock.now()


async def test_starts_and_approvals_are_counted_per_purpose(client, app, carrier, auth):
    def counts(text: str, name: str) -> dict[str, float]:
        prefix = f"smsreg_verifications_{name}_total{{purpose="
        return {
            line[len(prefix) + 1 : line.index('"}')]: float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith(prefix)
        }

    before = (await client.get("/metrics")).text
    # Every purpose is a series from the start, so a dashboard sees 0 rather than nothing.
    assert set(counts(before, "started")) == {"coupon_usage", "coupon_delivery", "data_subject"}
    verification_id = (await start(client, auth, purpose="coupon_delivery")).json()["id"]
    code = await sent_code(app, carrier)
    assert (await check(client, auth, verification_id, wrong(code))).status_code == 422
    assert (await check(client, auth, verification_id, code)).status_code == 200
    after = (await client.get("/metrics")).text
    for name in ("started", "approved"):
        grew = {
            purpose: counts(after, name)[purpose] - value
            for purpose, value in counts(before, name).items()
        }
        assert grew == {"coupon_usage": 0, "coupon_delivery": 1, "data_subject": 0}, name
