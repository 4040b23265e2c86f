"""One rule for usernames and emails on every channel: `/auth/register`, logins, the
admin's user form and the user commands; and the migration that enforces it."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError

from crudkit.contrib.auth import identity
from crudkit.contrib.auth.models import User
from crudkit.contrib.auth.testing import create_user, login
from tests.admin_support import count, rows, staff, submit
from tests.admin_support import login as admin_login
from tests.cli_support import Cli, fresh_database

REGISTER = "/api/v1/auth/register"
PASSWORD = "violet-otter-harbour"
ENV = {"CRUDKIT_SUPERUSER_PASSWORD": PASSWORD}

FULLWIDTH_ADMIN = "\uff41dmin"  # a fullwidth "a", then "dmin"
CYRILLIC_ADMIN = "\u0430dmin"  # a Cyrillic "a", then Latin "dmin"
TAKEN = "A user with that username already exists."
MIXED = "Usernames may not mix Latin, Greek and Cyrillic letters, which look alike."


async def _usernames(app: FastAPI) -> list[str]:
    return sorted(str(row["username"]) for row in await rows(app, User))


async def _register(client: httpx.AsyncClient, username: str, email: str = "") -> httpx.Response:
    return await client.post(
        REGISTER, json={"username": username, "email": email, "password": PASSWORD}
    )


def _error(response: httpx.Response, field: str) -> str:
    assert response.status_code == 422, response.text
    [error] = [e for e in response.json()["detail"] if e["loc"] == ["body", field]]
    return str(error["msg"])


def _field_errors(response: httpx.Response, name: str) -> str:
    """The error messages the admin form shows under the field `name`."""
    match = re.search(
        rf'name="{name}"(?:(?!name=")[\s\S])*?<div class="invalid-feedback">(.*?)</div>',
        response.text,
        re.DOTALL,
    )
    return html.unescape(match.group(1)) if match else ""


# The API.


@pytest.mark.parametrize(
    "username", ["admin ", " admin", FULLWIDTH_ADMIN, "Admin", "ADMIN\u3000", "\uff21dmin"]
)
async def test_register_collides_with_admin_once_normalised(
    app: FastAPI, client: httpx.AsyncClient, username: str
) -> None:
    await create_user(app, "admin")

    response = await _register(client, username)

    assert response.status_code == 409, response.text
    assert response.json()["detail"] == TAKEN
    assert await _usernames(app) == ["admin"]


@pytest.mark.parametrize(
    ("existing", "new"),
    [("\u00c4dmin", "\u00e4dmin"), ("Stra\u00dfe", "STRASSE"), ("strasse", "Stra\u00dfe")],
)
async def test_register_collides_beyond_ascii_case(
    app: FastAPI, client: httpx.AsyncClient, existing: str, new: str
) -> None:
    # SQLite's lower() folds ASCII only: these are caught by the full case folding.
    await create_user(app, existing)

    response = await _register(client, new)

    assert response.status_code == 409, response.text
    assert await _usernames(app) == [existing]


async def test_register_stores_normalised_values_and_login_takes_any_case(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await _register(client, f" {FULLWIDTH_ADMIN} ", email=" Ann@Example.COM ")

    assert response.status_code == 201, response.text
    assert response.json()["username"] == "admin"
    assert response.json()["email"] == "Ann@example.com"
    for typed in ("admin", "ADMIN", " Admin ", FULLWIDTH_ADMIN):
        headers = await login(client, typed, PASSWORD)
        me = await client.get("/api/v1/auth/me", headers=headers)
        assert me.json()["username"] == "admin", typed


async def test_login_throttle_counts_every_spelling_of_a_name_as_one(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await create_user(app, "admin", PASSWORD)
    spellings = ["admin", "Admin", "admin ", FULLWIDTH_ADMIN, " ADMIN"]

    for attempt in range(app.state.settings.login_attempts):
        typed = spellings[attempt % len(spellings)]
        wrong = await client.post(
            "/api/v1/auth/token", data={"username": typed, "password": "wrong-password"}
        )
        assert wrong.status_code == 401, typed
    right = await client.post(
        "/api/v1/auth/token", data={"username": "\uff21DMIN", "password": PASSWORD}
    )

    assert right.status_code == 429


@pytest.mark.parametrize("username", [CYRILLIC_ADMIN, "p\u0430ypal", "\u03b1dmin"])
async def test_register_refuses_look_alike_letters(
    app: FastAPI, client: httpx.AsyncClient, username: str
) -> None:
    response = await _register(client, username)

    assert _error(response, "username") == MIXED
    assert await _usernames(app) == []


@pytest.mark.parametrize(
    "username", ["\u0430\u0434\u043c\u0438\u043d", "\u03b1\u03bb\u03c6\u03b1", "ann_\u5f20"]
)
async def test_register_accepts_names_in_one_script(
    client: httpx.AsyncClient, username: str
) -> None:
    response = await _register(client, username)

    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("nope", "An email address must have an @-sign."),
        ("ann@localhost", "The part after the @-sign is not valid. It should have a period."),
        ("ann smith@example.com", "The email address contains invalid characters"),
        ("ann@@example.com", "The part after the @-sign contains invalid characters"),
        ("ann@example..com", "An email address cannot have two periods in a row."),
    ],
)
async def test_register_refuses_bad_emails(
    app: FastAPI, client: httpx.AsyncClient, email: str, message: str
) -> None:
    response = await _register(client, "ann", email=email)

    assert _error(response, "email").startswith(message)
    assert await _usernames(app) == []


async def test_register_without_an_email_still_works(client: httpx.AsyncClient) -> None:
    response = await _register(client, "ann")

    assert response.status_code == 201, response.text
    assert response.json()["email"] == ""


async def test_the_database_refuses_what_a_racing_write_slipped_past(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writes checking at once both find the name free: the unique index on
    lower(username) refuses the second, as a 409 and a form error, never SQL."""

    async def free(*args: Any, **kwargs: Any) -> None:
        return None

    await staff(app, client, "root", superuser=True)
    await create_user(app, "admin")
    monkeypatch.setattr(identity, "find_username_clash", free)

    api = await _register(client, "Admin")
    form = await submit(
        client, "/admin/user/create", {"username": "ADMIN", "password": PASSWORD, "is_active": "y"}
    )

    assert api.status_code == 409, api.text
    assert api.json()["detail"] == TAKEN
    assert form.status_code == 400, form.text
    assert "A row with this username already exists." in form.text
    assert "UNIQUE" not in form.text
    assert "INSERT" not in form.text
    assert await _usernames(app) == ["admin", "root"]


# The admin.


async def test_admin_refuses_a_username_taken_in_another_form(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "root", superuser=True)
    await create_user(app, "admin")

    for username in ("Admin", "admin ", FULLWIDTH_ADMIN, " ROOT"):
        response = await submit(
            client,
            "/admin/user/create",
            {"username": username, "email": "", "password": PASSWORD, "is_active": "y"},
        )
        assert response.status_code == 400, username
        assert TAKEN in _field_errors(response, "username"), username

    assert await count(app, User) == 2


async def test_admin_edit_cannot_take_another_users_name_but_may_recase_its_own(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "root", superuser=True)
    ann_id = await create_user(app, "ann")

    taken = await submit(
        client, f"/admin/user/edit/{ann_id}", {"username": "Root", "is_active": "y"}
    )
    recased = await submit(
        client, f"/admin/user/edit/{ann_id}", {"username": " Ann ", "is_active": "y"}
    )

    assert taken.status_code == 400
    assert TAKEN in taken.text
    assert recased.status_code == 302, recased.text
    assert await _usernames(app) == ["Ann", "root"]


async def test_admin_stores_normalised_values(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)

    response = await submit(
        client,
        "/admin/user/create",
        {
            "username": f" {FULLWIDTH_ADMIN} ",
            "email": "Ann@Example.COM",
            "password": PASSWORD,
            "is_active": "y",
        },
    )

    assert response.status_code == 302, response.text
    [row] = await rows(app, User, username="admin")
    assert row["email"] == "Ann@example.com"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"username": CYRILLIC_ADMIN}, MIXED),
        ({"username": "ann smith"}, "Usernames may contain only letters, numbers"),
        ({"username": "ann", "email": "nope"}, "An email address must have an @-sign."),
        ({"username": "ann", "email": "ann@example"}, "It should have a period."),
    ],
)
async def test_admin_refuses_look_alikes_and_bad_emails(
    app: FastAPI, client: httpx.AsyncClient, values: dict[str, str], message: str
) -> None:
    await staff(app, client, "root", superuser=True)

    response = await submit(
        client, "/admin/user/create", {**values, "password": PASSWORD, "is_active": "y"}
    )

    field = "email" if "email" in values else "username"
    assert response.status_code == 400, response.text
    assert message in _field_errors(response, field)
    assert await _usernames(app) == ["root"]


async def test_admin_login_takes_any_case(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_user(app, "root", PASSWORD, is_staff=True, is_superuser=True)

    response = await admin_login(client, " ROOT", PASSWORD)

    assert response.status_code == 302, response.text
    assert (await client.get("/admin/")).status_code == 200


# The commands.


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Cli]:
    with fresh_database(tmp_path_factory.mktemp("usernames"), backend) as url:
        cli = Cli(url)
        assert cli("migrate").exit_code == 0
        yield cli


@pytest.fixture
def cli(migrated: Cli) -> Iterator[Cli]:
    yield migrated
    migrated.query("DELETE FROM auth_refresh_token")
    migrated.query("DELETE FROM auth_user")


def _stored(cli: Cli) -> list[tuple[str, str]]:
    return [tuple(row) for row in cli.query("SELECT username, email FROM auth_user ORDER BY id")]


def test_createuser_refuses_a_username_taken_in_another_case(cli: Cli) -> None:
    assert cli("createuser", "admin", "--noinput", env=ENV).exit_code == 0

    recased = cli("createuser", "Admin", "--noinput", env=ENV)
    widened = cli("createsuperuser", "--noinput", "--username", f"{FULLWIDTH_ADMIN} ", env=ENV)

    assert recased.exit_code == 1
    assert recased.stderr == (
        "Error: a user named 'admin' already exists, and usernames are unique whatever "
        "their case: 'Admin' is taken\n"
    )
    assert widened.exit_code == 1
    assert widened.stderr == "Error: a user named 'admin' already exists\n"
    assert _stored(cli) == [("admin", "")]


def test_createuser_stores_normalised_values(cli: Cli) -> None:
    result = cli(
        "createuser", f" {FULLWIDTH_ADMIN}", "--email", "Ann@Example.COM", "--noinput", env=ENV
    )

    assert result.exit_code == 0, result.output
    assert result.stdout == "User 'admin' created.\n"
    assert _stored(cli) == [("admin", "Ann@example.com")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([CYRILLIC_ADMIN], f"Error: '{CYRILLIC_ADMIN}' is not a valid username: {MIXED}\n"),
        (
            ["ann", "--email", "ann@example"],
            "Error: 'ann@example' is not a valid email address: The part after the @-sign "
            "is not valid. It should have a period.\n",
        ),
    ],
)
def test_createuser_refuses_look_alikes_and_bad_emails(
    cli: Cli, args: list[str], message: str
) -> None:
    result = cli("createuser", *args, "--noinput", env=ENV)

    assert result.exit_code == 1
    assert result.stderr == message
    assert _stored(cli) == []


def test_changepassword_finds_the_user_in_any_case(cli: Cli) -> None:
    cli("createuser", "bob", "--noinput", env=ENV)
    new = "lantern-quarry-mosaic"

    result = cli("changepassword", " BOB", input=f"{new}\n{new}\n")

    assert result.exit_code == 0, result.output


# The migration.

INSERT_USER = (
    "INSERT INTO auth_user (username, email, hashed_password, is_active, is_staff, "
    "is_superuser, date_joined, token_version) "
    "VALUES ('{}', '', '', true, false, false, CURRENT_TIMESTAMP, 0)"
)


def _names(cli: Cli) -> list[str]:
    return sorted(row[0] for row in cli.query("SELECT username FROM auth_user"))


def test_0002_normalises_existing_usernames_and_enforces_case_insensitivity(
    tmp_path: Path, backend: str
) -> None:
    with fresh_database(tmp_path, backend) as url:
        cli = Cli(url)
        assert cli("migrate", "auth", "0001").exit_code == 0
        for username in ("carol ", "\uff44ave", "Erin"):
            cli.query(INSERT_USER.format(username))

        result = cli("migrate")

        assert result.exit_code == 0, result.output
        assert "  Applying auth.0002_username_case_insensitive... OK\n" in result.stdout
        assert _names(cli) == ["Erin", "carol", "dave"]
        with pytest.raises(IntegrityError):
            cli.query(INSERT_USER.format("ERIN"))
        cli.query(INSERT_USER.format("frank"))
        assert cli("migrate", "auth", "0001").exit_code == 0  # and back down
        cli.query(INSERT_USER.format("FRANK"))


def test_0002_stops_on_usernames_that_would_be_the_same(tmp_path: Path, backend: str) -> None:
    with fresh_database(tmp_path, backend) as url:
        cli = Cli(url)
        assert cli("migrate", "auth", "0001").exit_code == 0
        for username in ("admin", "Admin", "bob", "bob ", "carol "):
            cli.query(INSERT_USER.format(username))

        result = cli("migrate", "auth")

        assert result.exit_code == 1
        assert result.stderr.startswith(
            "Error: migration auth.0002_username_case_insensitive failed and was rolled back: "
            "usernames must now be unique whatever their case, width or surrounding spaces; "
            "rename all but one of each of these, then migrate again: "
            "'Admin', 'admin'; 'bob', 'bob '"
        )
        assert "Traceback" not in result.output
        assert _names(cli) == ["Admin", "admin", "bob", "bob ", "carol "]  # nothing changed
