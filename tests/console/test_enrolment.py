"""Taking an invitation up in the console: one's own password, then TOTP with a QR code;
the recovery codes shown once; the token good for one enrolment only."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest

from app.staff import invitations
from app.staff.new_account import NewAccount
from app.staff.roles import Role
from tests.conftest import call
from tests.console.helpers import csrf_of, get, post, sign_in
from tests.staff.helpers import CHEAP_HASHING

OWN_PASSWORD = "my own long passphrase"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {**CHEAP_HASHING}


async def _invited(app, username: str, display_name: str) -> invitations.NewInvitation:
    """An operator invited from the command line: its token, once."""
    new = NewAccount(username=username, display_name=display_name, role=Role.OPERATOR)
    return await call(app, invitations.invite, actor="cli", new=new)


async def test_an_invited_operator_enrols_in_the_console_and_signs_in(client, app, clock):
    made = await _invited(app, "hanako", "Hanako Yamada")
    form = await get(client, "/console/enrol")
    assert form.status_code == 200
    mistyped = await post(
        client,
        "/console/enrol",
        {
            "token": made.token,
            "password": OWN_PASSWORD,
            "repeat_password": OWN_PASSWORD.upper(),
            "csrf": csrf_of(form),
        },
    )
    assert mistyped.status_code == 422 and "repeat_password" in mistyped.text
    started = await post(
        client,
        "/console/enrol",
        {
            "token": made.token,
            "password": OWN_PASSWORD,
            "repeat_password": OWN_PASSWORD,
            "csrf": csrf_of(form),
        },
    )
    assert started.status_code == 200, started.text
    assert 'src="data:image/svg+xml' in started.text
    secret = started.text.split('id="totp-secret">')[1].split("<")[0]
    # A mistyped first code shows the same secret again, with the error: a new one would
    # silently break the entry already in the authenticator app.
    right = pyotp.TOTP(secret).at(clock.now())
    typo = await post(
        client,
        "/console/enrol/confirm",
        {"token": made.token, "code": "000000" if right != "000000" else "111111",
         "csrf": csrf_of(started)},
    )  # fmt: skip
    assert typo.status_code == 422
    assert f'id="totp-secret">{secret}<' in typo.text and 'id="error"' in typo.text
    done = await post(
        client,
        "/console/enrol/confirm",
        {"token": made.token, "code": right, "csrf": csrf_of(typo)},
    )
    assert done.status_code == 200, done.text
    assert done.text.count("<li><code>") == 10
    # A reload of the recovery codes sends the form again: it said only that the
    # invitation was unknown or used, with a way back to the form, and no word that the
    # account was ready and its codes shown once. It says both now, with a way to sign in.
    reloaded = await post(
        client,
        "/console/enrol/confirm",
        {"token": made.token, "code": right, "csrf": csrf_of(typo)},
    )
    assert reloaded.status_code == 401
    assert 'id="hint"' in reloaded.text and "your account is ready" in reloaded.text
    assert 'href="/console/login" id="sign-in"' in reloaded.text
    # The token is used up.
    again = await post(
        client,
        "/console/enrol",
        {
            "token": made.token,
            "password": OWN_PASSWORD,
            "repeat_password": OWN_PASSWORD,
            "csrf": csrf_of(form),
        },
    )
    assert again.status_code == 401
    clock.advance(seconds=30)
    code = pyotp.TOTP(secret).at(clock.now())
    assert (await sign_in(client, "hanako", OWN_PASSWORD, totp=code)).status_code == 303
    assert (await get(client, "/console/")).status_code == 200


async def test_an_invitation_revoked_during_enrolment_says_to_ask_for_another(client, app, clock):
    """Revoked while its owner was enrolling, the refusal of their first code said their
    account was ready and to sign in, which was refused: the account was disabled."""
    made = await _invited(app, "jiro", "Jiro Sato")
    form = await get(client, "/console/enrol")
    started = await post(
        client,
        "/console/enrol",
        {"token": made.token, "password": OWN_PASSWORD, "repeat_password": OWN_PASSWORD,
         "csrf": csrf_of(form)},
    )  # fmt: skip
    assert started.status_code == 200, started.text
    secret = started.text.split('id="totp-secret">')[1].split("<")[0]
    await call(app, invitations.revoke, actor="cli", invitation_id=made.invitation.id)
    refused = await post(
        client,
        "/console/enrol/confirm",
        {"token": made.token, "code": pyotp.TOTP(secret).at(clock.now()),
         "csrf": csrf_of(started)},
    )  # fmt: skip
    assert refused.status_code == 401
    assert "ask an admin for a new one" in refused.text
    assert "your account is ready" not in refused.text and 'id="sign-in"' not in refused.text


def test_every_sent_again_hint_is_said_in_both_languages():
    from app.console import i18n
    from app.console.web import SENT_AGAIN_HINTS

    for lang in i18n.LANGUAGES:
        for words in [*SENT_AGAIN_HINTS.values(), "hint_invitation_ask_again"]:
            assert i18n.CATALOGUE[lang].get(words), (lang, words)


async def test_an_unknown_token_is_refused_before_any_password_is_hashed(client, app):
    form = await get(client, "/console/enrol")
    answer = await post(
        client,
        "/console/enrol",
        {
            "token": "smsreg_inv_madeup",
            "password": OWN_PASSWORD,
            "repeat_password": OWN_PASSWORD,
            "csrf": csrf_of(form),
        },
    )
    assert answer.status_code == 401
    assert "invitation" in answer.text
