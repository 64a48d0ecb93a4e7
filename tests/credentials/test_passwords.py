"""The password policy: length, common passwords, the username, zxcvbn; changing it;
argon2id parameters from settings with a rehash at login."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from app.core.errors import InvalidInput
from app.credentials import passwords
from tests.conftest import make_settings
from tests.credentials.helpers import invoke_async, use_cli
from tests.staff.helpers import (
    PASSWORD,
    bearer,
    create_staff,
    events,
    execute,
    login,
    rows,
    staff_auth,
)

STRONG = "violet tugboat quantum marmalade"
WEAK = [
    pytest.param("Xq9!vB2#kL", "must be at least 12 characters", id="short"),
    pytest.param("password1234!", "is a common password", id="common"),
    pytest.param("drowssap1234", "is a common password", id="common-reversed"),
    pytest.param("P@ssw0rd12345", "is a common password", id="common-l33t"),
    pytest.param("qwertyuiop123", "is a common password", id="keyboard"),
    pytest.param("my HANAKO uncommon quilt", "must not contain the username", id="username"),
    pytest.param(
        "ｈａｎａｋｏ uncommon quilt", "must not contain the username", id="username-nfkc"
    ),
    pytest.param("aaaaaaaaaaaaaaaa", "is too easy to guess", id="repeat"),
    pytest.param("abcdefghijklmnop", "is too easy to guess", id="sequence"),
]


@pytest.mark.parametrize(("password", "reason"), WEAK)
def test_policy_refuses_weak_passwords(password, reason, tmp_path):
    settings = make_settings("sqlite://", tmp_path)
    with pytest.raises(InvalidInput) as refused:
        passwords.check_policy(password, settings=settings, username="hanako", field="pw")
    (problem,) = refused.value.errors
    assert problem.field == "pw" and reason in problem.detail
    assert password not in refused.value.detail  # the detail never repeats the password


@pytest.mark.parametrize(
    "password",
    [STRONG, PASSWORD, "Kx7#vQ2!mZ9@", "z" * 3 + " ".join(["plinth", "saffron", "gondola"]) * 40],
)
def test_policy_accepts_strong_passwords(password, tmp_path):
    settings = make_settings("sqlite://", tmp_path)
    passwords.check_policy(password, settings=settings, username="hanako")


def test_policy_length_bounds_and_score_are_settings(tmp_path):
    strict = make_settings("sqlite://", tmp_path, password_min_length=40, password_min_score=4)
    with pytest.raises(InvalidInput, match="at least 40"):
        passwords.check_policy(STRONG, settings=strict, username=None)
    with pytest.raises(InvalidInput, match="at most 1024"):
        passwords.check_policy("Kx7#vQ2!mZ9@" * 90, settings=strict, username=None)


@pytest.mark.parametrize(("password", "reason"), WEAK)
async def test_enrolling_with_a_weak_password_changes_nothing(client, app, password, reason):
    headers = await staff_auth(app, client, "admin", username="root")
    made = await client.post(
        "/v1/staff/invitations",
        json={"username": "hanako", "display_name": "H", "role": "operator"},
        headers=headers,
    )
    before = rows(app, "SELECT password_hash FROM staff_accounts WHERE username = 'hanako'")
    answer = await client.post(
        "/v1/staff/enrolment", json={"token": made.json()["token"], "password": password}
    )
    assert answer.status_code == 422
    (problem,) = answer.json()["errors"]
    assert problem["field"] == "password" and reason in problem["detail"]
    after = rows(app, "SELECT password_hash FROM staff_accounts WHERE username = 'hanako'")
    assert after == before
    assert events(app, "staff:invitation:password_set") == []


@pytest.mark.parametrize(("password", "reason"), WEAK)
async def test_changing_to_a_weak_password_changes_nothing(client, app, password, reason):
    await create_staff(app, "operator", username="hanako")
    headers = bearer((await login(client, "hanako")).json()["token"])
    other = bearer((await login(client, "hanako")).json()["token"])
    before = rows(app, "SELECT password_hash, password_changed_at FROM staff_accounts")
    answer = await client.put(
        "/v1/staff/me/password",
        json={"current_password": PASSWORD, "new_password": password},
        headers=headers,
    )
    assert answer.status_code == 422
    (problem,) = answer.json()["errors"]
    assert problem["field"] == "new_password" and reason in problem["detail"]
    assert rows(app, "SELECT password_hash, password_changed_at FROM staff_accounts") == before
    assert (await client.get("/v1/staff/me", headers=other)).status_code == 200
    assert events(app, "staff:account:password_changed") == []


async def test_the_new_password_must_differ(client, app):
    await create_staff(app, "operator", username="hanako")
    headers = bearer((await login(client, "hanako")).json()["token"])
    before = rows(app, "SELECT password_hash, failed_logins FROM staff_accounts")
    same = await client.put(
        "/v1/staff/me/password",
        json={"current_password": PASSWORD, "new_password": PASSWORD},
        headers=headers,
    )
    assert same.status_code == 422
    assert same.json()["errors"][0] == {
        "location": "body",
        "field": "new_password",
        "detail": "must differ from the current password",
    }
    assert rows(app, "SELECT password_hash, failed_logins FROM staff_accounts") == before


async def test_a_good_change_takes_effect(client, app):
    await create_staff(app, "operator", username="hanako")
    headers = bearer((await login(client, "hanako")).json()["token"])
    answer = await client.put(
        "/v1/staff/me/password",
        json={"current_password": PASSWORD, "new_password": STRONG},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    assert (await login(client, "hanako")).status_code == 401
    assert (await login(client, "hanako", STRONG)).status_code == 201


async def test_a_locked_account_cannot_go_on_guessing_its_password(client, app, clock):
    """A stolen session guessing the current password: the wrong guesses lock the account,
    and then even the right one is refused until the lock ends, before argon2 is spent."""
    await create_staff(app, "operator", username="hanako")
    headers = bearer((await login(client, "hanako")).json()["token"])

    async def change(current: str) -> int:
        body = {"current_password": current, "new_password": STRONG}
        return (await client.put("/v1/staff/me/password", json=body, headers=headers)).status_code

    tries = app.state.ctx.settings.login_max_failures
    assert [await change(f"wrong guess {n:04}") for n in range(tries)] == [422] * tries
    before = rows(app, "SELECT password_hash FROM staff_accounts")
    assert await change("another guess!") == 429
    assert await change(PASSWORD) == 429
    assert rows(app, "SELECT password_hash FROM staff_accounts") == before
    clock.advance(minutes=app.state.ctx.settings.login_lockout_minutes, seconds=1)
    assert await change(PASSWORD) == 200


async def test_login_rehashes_with_the_configured_parameters(client, app):
    account = await create_staff(app, "operator", username="hanako")
    settings = app.state.ctx.settings
    older = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1).hash(PASSWORD)
    execute(
        app, "UPDATE staff_accounts SET password_hash = :h WHERE id = :id", h=older, id=account.id
    )
    assert (await login(client, "hanako")).status_code == 201
    (row,) = rows(app, "SELECT password_hash FROM staff_accounts")
    assert row["password_hash"] != older
    current = PasswordHasher(
        time_cost=settings.password_hash_time_cost,
        memory_cost=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )
    assert row["password_hash"].startswith("$argon2id$")
    assert not current.check_needs_rehash(row["password_hash"])
    assert events(app, "staff:login:succeeded")[-1]["details"]["rehashed"] is True


async def test_the_command_line_applies_the_policy(client, app, settings, monkeypatch):
    use_cli(settings, monkeypatch)
    args = ["staff", "create", "--username", "root", "--role", "admin", "--display-name", "R"]
    weak = await invoke_async(*args, "--password-stdin", stdin="password1234!\n")
    assert weak.exit_code == 1 and "common password" in weak.output
    assert rows(app, "SELECT id FROM staff_accounts") == []
    made = await invoke_async(*args, "--password-stdin", stdin=STRONG + "\n")
    assert made.exit_code == 0, made.output
