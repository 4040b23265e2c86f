"""User commands: `createsuperuser`, `createuser` and `changepassword`.

    python manage.py createsuperuser --username admin --email admin@example.com
    CRUDKIT_SUPERUSER_PASSWORD=... python manage.py createsuperuser --noinput --username admin
    printf 'n3w-passw0rd!\\nn3w-passw0rd!\\n' | python manage.py changepassword alice

Passwords are asked twice (read as two lines when stdin is not a terminal),
checked by the rules the API applies (`password_problems`) and hashed with
`hash_password`. `AuthConfig.ready()` adds these commands to `manage.py`.
"""

from __future__ import annotations

import asyncio
import os
import sys

import click
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crudkit.cli import CommandError, Project, pass_project
from crudkit.contrib.auth.hashing import hash_password
from crudkit.contrib.auth.identity import (
    find_username_clash,
    normalize_username,
    validate_email,
    validate_username,
)
from crudkit.contrib.auth.models import User
from crudkit.contrib.auth.passwords import password_problems
from crudkit.exceptions import Conflict
from crudkit.writes import Caller, WritePipeline

USERNAME_ENV = "CRUDKIT_SUPERUSER_USERNAME"
EMAIL_ENV = "CRUDKIT_SUPERUSER_EMAIL"
PASSWORD_ENV = "CRUDKIT_SUPERUSER_PASSWORD"

noinput_option = click.option(
    "--noinput",
    "--no-input",
    "noinput",
    is_flag=True,
    help=f"Ask nothing: the password comes from {PASSWORD_ENV}.",
)


@click.command()
@click.option("--username", help=f"Login name [env with --noinput: {USERNAME_ENV}].")
@click.option("--email", help=f"Email address [env with --noinput: {EMAIL_ENV}].")
@noinput_option
@pass_project
def createsuperuser(
    project: Project, username: str | None, email: str | None, noinput: bool
) -> None:
    """Create a superuser: staff, with every permission."""
    if noinput:
        username = username or os.environ.get(USERNAME_ENV)
        if email is None:
            email = os.environ.get(EMAIL_ENV, "")
        if not username:
            raise CommandError(f"--noinput needs --username (or {USERNAME_ENV})")
    created = asyncio.run(
        _create_user(project, username, email, noinput=noinput, is_staff=True, is_superuser=True)
    )
    click.echo(f"Superuser {created!r} created.")


@click.command()
@click.argument("username")
@click.option("--email", help="Email address.")
@click.option("--staff", is_flag=True, help="May log in to the admin.")
@noinput_option
@pass_project
def createuser(
    project: Project, username: str, email: str | None, staff: bool, noinput: bool
) -> None:
    """Create a user who is not a superuser; permissions are given in the admin."""
    if noinput and email is None:
        email = ""
    created = asyncio.run(
        _create_user(project, username, email, noinput=noinput, is_staff=staff, is_superuser=False)
    )
    click.echo(f"User {created!r} created.")


@click.command()
@click.argument("username")
@pass_project
def changepassword(project: Project, username: str) -> None:
    """Change USERNAME's password; every token they hold stops working.

    Asks twice; when stdin is not a terminal, reads the two lines from it.
    """
    asyncio.run(_change_password(project, username))
    click.echo(f"Password changed for user {username!r}; their tokens no longer work.")


async def _create_user(
    project: Project,
    username: str | None,
    email: str | None,
    *,
    noinput: bool,
    is_staff: bool,
    is_superuser: bool,
) -> str:
    """Insert the user, asking what the options did not give; the username."""
    async with project.database() as db:
        if username is None:
            username = click.prompt("Username")
        username = _check_username(username)
        async with db.reader() as reader:
            existing = await find_username_clash(reader, username)
        if existing is not None:
            raise CommandError(_taken(username, existing))
        if email is None:
            email = click.prompt("Email address", default="", show_default=False)
        email = _check_email(email)
        if noinput:
            password = os.environ.get(PASSWORD_ENV, "")
            if not password:
                raise CommandError(f"--noinput needs the password in {PASSWORD_ENV}")
        else:
            password = read_new_password()
        check_password(password, username=username, email=email)
        values = {
            "username": username,
            "email": email,
            "hashed_password": hash_password(password),
            "is_staff": is_staff,
            "is_superuser": is_superuser,
        }
        pipeline = WritePipeline(db, project.apps)
        try:
            await pipeline.create(User, values, _caller(pipeline))
        except Conflict:  # created by someone else meanwhile
            raise CommandError(_taken(username, username)) from None
    return username


async def _change_password(project: Project, username: str) -> None:
    async with project.database() as db:
        async with db.session() as session:
            user = await _find(session, username)
        if user is None:
            raise CommandError(f"user {username!r} does not exist")
        click.echo(f"Changing password for user {username!r}")
        password = read_new_password()
        check_password(password, username=user.username, email=user.email)
        # The new hash bumps token_version (`UserResource.before_update`): old tokens die.
        pipeline = WritePipeline(db, project.apps)
        values = {"hashed_password": hash_password(password)}
        await pipeline.update(User, user.id, values, _caller(pipeline))


def _caller(pipeline: WritePipeline) -> Caller:
    """The command line: a trusted caller, recorded as `cli` in the history."""
    return Caller(pipeline.script_request(), via="cli", check=False)


async def _find(session: AsyncSession, username: str) -> User | None:
    """The user logging in as `username` would be (normalised, any case)."""
    name = func.lower(normalize_username(username))
    result = await session.execute(select(User).where(func.lower(User.username) == name))
    return result.scalar_one_or_none()


def read_new_password() -> str:
    """A new password, entered twice: hidden prompts on a terminal, else two stdin lines."""
    stdin = sys.stdin
    if stdin.isatty():
        password: str = click.prompt(
            "Password", hide_input=True, confirmation_prompt="Password (again)"
        )
        return password
    first, second = stdin.readline(), stdin.readline()
    if not first:
        raise CommandError("no password given on stdin (expected it twice, one per line)")
    if first.rstrip("\r\n") != second.rstrip("\r\n"):
        raise CommandError("the two passwords do not match")
    return first.rstrip("\r\n")


def check_password(password: str, *, username: str, email: str) -> None:
    """Print every rule the password breaks and exit 1, or return."""
    problems = password_problems(password, username=username, email=email)
    for problem in problems:
        click.echo(f"Error: {problem}", err=True)
    if problems:
        raise click.exceptions.Exit(1)


def _check_username(username: str) -> str:
    """The username normalised as every channel stores it, or a one-line error."""
    try:
        return validate_username(username)
    except ValueError as exc:
        raise CommandError(f"{username!r} is not a valid username: {exc}") from None


def _check_email(email: str) -> str:
    try:
        return validate_email(email)
    except ValueError as exc:
        raise CommandError(f"{email!r} is not a valid email address: {exc}") from None


def _taken(username: str, existing: str) -> str:
    if existing == username:
        return f"a user named {username!r} already exists"
    return (
        f"a user named {existing!r} already exists, and usernames are unique whatever "
        f"their case: {username!r} is taken"
    )
