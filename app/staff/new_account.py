"""What a new staff account may be called, and its first password: checked and hashed before
the transaction that stores the account, by the HTTP route and the command line alike.

The request schema (app.staff.schemas.StaffCreate) validates the username and display
name with the same functions the command line calls here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic_core import PydanticCustomError

from app.core.config import Settings
from app.core.context import Context
from app.core.errors import InvalidInput
from app.core.text import visible
from app.credentials import passwords
from app.staff.roles import Role

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._\-]{2,63}$")
MAX_DISPLAY_NAME = 100


def normalize_username(username: str) -> str:
    """Usernames are compared in lower case."""
    return username.strip().lower()


def clean_username(username: str) -> str:
    """A new account's username, normalised; refused unless 3-64 of a-z 0-9 . _ -."""
    name = normalize_username(username)
    if not USERNAME.fullmatch(name):
        raise PydanticCustomError(
            "username", "must be 3 to 64 characters: letters, digits, '.', '_' or '-'"
        )
    return name


def clean_display_name(display_name: str) -> str:
    """A display name with its whitespace collapsed; refused unless 1-100 printable."""
    shown = " ".join(display_name.split())
    if not 1 <= len(shown) <= MAX_DISPLAY_NAME or not shown.isprintable():
        raise PydanticCustomError("display_name", "must be 1 to 100 printable characters")
    try:
        return visible(shown)  # a Hangul filler is printable, yet shows nothing
    except ValueError as exc:
        raise PydanticCustomError("display_name", str(exc)) from None


@dataclass(frozen=True)
class NewAccount:
    """A new account's checked values, before its password is hashed."""

    username: str
    display_name: str
    role: Role


def check_new_account(
    settings: Settings, *, username: str, display_name: str, role: str, password: str
) -> NewAccount:
    """A new account as the command line gives it, checked: the names as the request schema
    checks them, the role, and the password policy. InvalidInput naming the field."""
    try:
        name = clean_username(username)
        shown = clean_display_name(display_name)
    except PydanticCustomError as exc:
        raise InvalidInput.field(exc.type, exc.message()) from None
    try:
        checked_role = Role(role)
    except ValueError:
        raise InvalidInput.field("role", f"must be one of {[r.value for r in Role]}") from None
    passwords.check_policy(password, settings=settings, username=name)
    return NewAccount(username=name, display_name=shown, role=checked_role)


async def hash_first_password(ctx: Context, *, new: NewAccount, password: str) -> str:
    """A new account's password, checked against the policy and hashed, in worker threads
    (zxcvbn and argon2 take ~20 and ~100 ms): before the transaction that stores it."""
    await passwords.check_policy_apart(password, settings=ctx.settings, username=new.username)
    return await passwords.hash_password(ctx.settings, password)
