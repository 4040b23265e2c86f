"""One rule for usernames and email addresses, whichever channel writes the user.

    validate_username(" \uff41dmin")     # a fullwidth a: -> "admin"
    validate_username("\u0430dmin")      # a Cyrillic a among Latin letters: ValueError
    validate_email("Ann@Example.COM")  # -> "Ann@example.com"

Usernames follow Django's: NFKC-normalised (fullwidth and other compatibility
forms become their plain letters), stripped, at most 150 letters, digits and
`@ . + - _`. Two usernames are the same name when their case folding is, so
`Admin` cannot join `admin` (`find_username_clash`; a unique index on
`lower(username)` holds the ASCII part against races). Latin, Greek and Cyrillic
letters look alike, so a username mixes none of them. Email addresses are
checked and normalised by `email-validator` (pydantic's), without DNS lookups.

`UserResource.validate` applies this to every write of a user (API, admin,
commands, scripts); `/auth/register` and the commands also check the values up
front (`Username`, `Email`), before a password is hashed. Logins look the
normalised name up case-insensitively (`crudkit.contrib.auth.users.load_user`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from email_validator import EmailNotValidError
from email_validator import validate_email as _check_email
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError
from sqlalchemy import ColumnElement, func, select

from crudkit.contrib.auth.models import User
from crudkit.db import Reader, table_of
from crudkit.exceptions import Conflict, ValidationError
from crudkit.fields import SafeStr

if TYPE_CHECKING:
    from starlette.requests import Request

    from crudkit.writes import WritePipeline

users = table_of(User)

MAX_USERNAME_LENGTH = 150
_USERNAME = re.compile(r"[\w.@+-]+")  # Django's characters; \w is Unicode-aware

USERNAME_TAKEN = "A user with that username already exists."
_CHARACTERS = "Usernames may contain only letters, numbers, and @/./+/-/_ characters."
_MIXED = "Usernames may not mix Latin, Greek and Cyrillic letters, which look alike."
_LOOK_ALIKE_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")
_NON_ASCII = r"[^\x01-\x7f]"


def normalize_username(username: str) -> str:
    """NFKC, then without surrounding whitespace: what is stored and looked up."""
    return unicodedata.normalize("NFKC", username).strip()


def username_key(username: str) -> str:
    """What usernames are compared by: two names with the same key are the same name."""
    return unicodedata.normalize("NFKC", normalize_username(username).casefold())


def _scripts(username: str) -> set[str]:
    """The look-alike scripts (Latin, Greek, Cyrillic) the letters of `username` use."""
    found: set[str] = set()
    for char in username:
        if char.isalpha():
            script = unicodedata.name(char, "").split(" ", 1)[0]
            if script in _LOOK_ALIKE_SCRIPTS:
                found.add(script)
    return found


def validate_username(username: str) -> str:
    """The username normalised; `ValueError` with a message saying why it is refused."""
    name = normalize_username(username)
    if not name:
        raise ValueError("A username is required.")
    if len(name) > MAX_USERNAME_LENGTH:
        raise ValueError(
            f"Usernames have at most {MAX_USERNAME_LENGTH} characters (this one has {len(name)})."
        )
    if not _USERNAME.fullmatch(name):
        raise ValueError(_CHARACTERS)
    if len(_scripts(name)) > 1:
        raise ValueError(_MIXED)
    return name


def validate_email(email: str) -> str:
    """The address normalised as email-validator recommends ("" stays ""); `ValueError`
    with the validator's message otherwise. No DNS lookup: checking deliverability
    would make a write wait on the network and fail offline."""
    email = email.strip()
    if not email:
        return ""
    try:
        return _check_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


def _field(check: Callable[[str], str], error_type: str) -> AfterValidator:
    """`check` as a pydantic validator: its message as the 422's, without a prefix."""

    def run(value: str) -> str:
        try:
            return check(value)
        except ValueError as exc:
            raise PydanticCustomError(error_type, str(exc)) from None

    return AfterValidator(run)


Username = Annotated[SafeStr, _field(validate_username, "username_invalid")]
"""A request field holding a username: normalised, or a 422 saying why not."""
Email = Annotated[SafeStr, _field(validate_email, "email_invalid")]
"""A request field holding an email address (or ""): normalised, or a 422."""


def _candidates(username: str) -> ColumnElement[bool]:
    """Rows that may share `username`'s key: the index finds those whose lower() is
    the same; names that fold together only beyond ASCII (`Ä`/`ä` on SQLite, `ß`/`ss`)
    are looked for among the non-ASCII names, and compared in Python."""
    column = func.lower(users.c.username)
    key = username_key(username)
    condition = (column == func.lower(username)) | (column == key)
    if not key.isascii() or "ss" in key:  # only ß and ẞ fold to ASCII ("ss")
        condition |= users.c.username.regexp_match(_NON_ASCII)
    return condition


async def find_username_clash(
    reader: Reader, username: str, *, exclude_id: int | None = None
) -> str | None:
    """The existing username that `username` would be the same name as, if any."""
    stmt = select(users.c.username).where(_candidates(username))
    if exclude_id is not None:
        stmt = stmt.where(users.c.id != exclude_id)
    key = username_key(username)
    for row in await reader.rows(stmt):
        existing: str = row[0]
        if username_key(existing) == key or existing.lower() == username.lower():
            return existing
    return None


async def clean_user_values(
    reader: Reader, values: dict[str, Any], obj: Any = None
) -> dict[str, Any]:
    """`values` of a user write with username and email normalised: 422 naming the field
    when one is invalid, 409 when the username is taken. Unchanged values are left
    alone, so an older row can still be edited."""
    errors: dict[str | None, str] = {}
    checks = (("username", validate_username), ("email", validate_email))
    changed = {
        field: check
        for field, check in checks
        if field in values and (obj is None or values[field] != getattr(obj, field))
    }
    for field, check in changed.items():
        try:
            values[field] = check(values[field] or "")
        except ValueError as exc:
            errors[field] = str(exc)
    if errors:
        raise ValidationError(errors)
    if "username" in changed:
        exclude = None if obj is None else obj.id
        if await find_username_clash(reader, values["username"], exclude_id=exclude):
            raise Conflict(USERNAME_TAKEN, fields=("username",))
    return values


async def clean_user_write(
    request: Request, values: dict[str, Any], obj: Any = None
) -> dict[str, Any]:
    """`clean_user_values` inside the write in progress (`Resource.validate`), so the
    username is looked up in the transaction that inserts it."""
    pipeline: WritePipeline = request.app.state.writes
    async with pipeline.transaction() as writer:  # joins the write's own transaction
        return await clean_user_values(writer, values, obj)
