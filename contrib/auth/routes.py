"""The auth endpoints, under `api_prefix`:

POST /auth/token     OAuth2 password form -> access and refresh tokens
POST /auth/refresh   a refresh token -> a new pair (the old one is spent)
POST /auth/logout    every token of the caller stops working
GET  /auth/me        the caller
POST /auth/register  a new user, when `allow_registration` is on
POST /auth/password  change the caller's password (ends every session)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crudkit.contrib.auth.deps import AuthenticatedUser, get_services
from crudkit.contrib.auth.hashing import MAX_PASSWORD_LENGTH
from crudkit.contrib.auth.identity import Email, Username
from crudkit.contrib.auth.models import RefreshToken, User
from crudkit.contrib.auth.passwords import MIN_LENGTH, password_problems
from crudkit.contrib.auth.sessions import end_sessions
from crudkit.contrib.auth.users import AuthUser, load_user
from crudkit.db import Database, table_of
from crudkit.exceptions import Conflict, Invalid, NotAuthenticated, NotFound
from crudkit.fields import SafeStr
from crudkit.openapi import error_responses
from crudkit.writes import Caller, WritePipeline

router = APIRouter(prefix="/auth", tags=["Auth"])
registration = APIRouter(prefix="/auth", tags=["Auth"])
"""`/auth/register`, served only when `allow_registration` is on."""

users = table_of(User)
refresh_tokens = table_of(RefreshToken)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(max_length=4096)


class UserOut(BaseModel):
    id: int
    username: str
    email: str
    is_active: bool
    is_staff: bool
    is_superuser: bool
    date_joined: datetime
    last_login: datetime | None


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The rules every channel applies (`auth.identity`), so stated in words, not a pattern.
    username: Username = Field(
        min_length=1,
        max_length=150,
        description="Letters, digits and @ . + - _; NFKC-normalised and stripped; unique "
        "whatever its case.",
    )
    email: Email = Field(default="", max_length=254, description="An email address, or empty.")
    password: SafeStr = Field(
        max_length=MAX_PASSWORD_LENGTH,
        # Documented, but checked by validate_password so the 422 names the rule.
        json_schema_extra={"minLength": MIN_LENGTH},
        description="At least 8 characters, not entirely numeric, not too similar to the "
        "username, not a common password.",
    )


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(max_length=MAX_PASSWORD_LENGTH)
    new_password: SafeStr = Field(max_length=MAX_PASSWORD_LENGTH)


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def validate_password(password: str, *, username: str = "", email: str = "") -> None:
    """422 naming every rule the password breaks."""
    problems = password_problems(password, username=username, email=email)
    if problems:
        raise Invalid(
            [
                {"loc": ["body", "password"], "msg": problem, "type": "password_invalid"}
                for problem in problems
            ]
        )


async def _issue_pair(
    request: Request, conn: AsyncConnection, user_id: int, version: int, family: str | None
) -> TokenPair:
    tokens = get_services(request).tokens
    access = tokens.issue(user_id, "access", version)
    refresh = tokens.issue(user_id, "refresh", version)
    await conn.execute(
        insert(refresh_tokens).values(
            jti=refresh.jti,
            family=family or refresh.jti,
            user_id=user_id,
            expires_at=datetime.fromtimestamp(refresh.expires_at, UTC),
        )
    )
    return TokenPair(
        access_token=access.token,
        refresh_token=refresh.token,
        expires_in=tokens.access_ttl,
    )


@router.post(
    "/token",
    response_model=TokenPair,
    summary="Log in with a username and password",
    responses=error_responses(400, 401, 413, 429, 503),
)
async def token(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> TokenPair:
    services = get_services(request)
    client = _client(request)
    # Counted before the password is looked at: parallel guesses cannot outrun the limit.
    await services.throttle.reserve(form.username, client)
    async with _db(request).read() as conn:
        user = await load_user(conn, username=form.username)
    if user is None:
        await services.hasher.verify_dummy(form.password)
        ok, new_hash = False, None
    else:
        ok, new_hash = await services.hasher.verify(form.password, user.hashed_password)
    if user is None or not ok or not user.is_active:
        raise NotAuthenticated("Incorrect username or password.")
    await services.throttle.succeeded(form.username, client)
    # Bookkeeping, not an edit: like Django's `update_last_login`, it leaves no history
    # row (one per login would drown the user's real changes).
    async with _db(request).transaction() as conn:
        values: dict[str, Any] = {"last_login": datetime.now(UTC)}
        if new_hash:  # an outdated scheme (bcrypt): upgrade to argon2id now
            values["hashed_password"] = new_hash
        await conn.execute(update(users).where(users.c.id == user.id).values(values))
        return await _issue_pair(request, conn, user.id, user.token_version, None)


@router.post(
    "/refresh",
    response_model=TokenPair,
    summary="Exchange a refresh token for a new pair",
    responses=error_responses(400, 401, 413),
)
async def refresh(request: Request, body: RefreshRequest) -> TokenPair:
    claims = get_services(request).tokens.decode(body.refresh_token, "refresh")
    now = datetime.now(UTC)
    async with _db(request).transaction() as conn:
        spent = await conn.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.jti == claims["jti"])
            .where(refresh_tokens.c.used_at.is_(None))
            .values(used_at=now)
            .returning(refresh_tokens.c.user_id, refresh_tokens.c.family)
        )
        row = spent.first()
        replayed = None
        if row is None:
            # A spent token presented again may have leaked: see below.
            replayed = await conn.scalar(
                select(refresh_tokens.c.user_id)
                .where(refresh_tokens.c.jti == claims["jti"])
                .where(refresh_tokens.c.used_at.is_not(None))
            )
            pair = None
        else:
            user = await load_user(conn, user_id=row._mapping["user_id"])
            valid = (
                user is not None
                and user.is_active
                and str(user.id) == claims["sub"]
                and user.token_version == claims["ver"]
            )
            pair = (
                await _issue_pair(
                    request, conn, user.id, user.token_version, row._mapping["family"]
                )
                if valid and user is not None
                else None
            )
    if replayed is not None:
        # Whoever holds it (its owner or a thief) may also hold access tokens minted from
        # its family: end every session of the user, so none outlives the replay.
        await end_sessions(request, replayed)
    if pair is None:
        raise NotAuthenticated("Invalid or expired refresh token.")
    return pair


@router.post(
    "/logout",
    status_code=204,
    response_class=Response,
    summary="End every session of the caller",
    responses=error_responses(401),
)
async def logout(request: Request, user: AuthenticatedUser) -> Response:
    await end_sessions(request, user.id)
    return Response(status_code=204)


@router.get(
    "/me", response_model=UserOut, summary="The current user", responses=error_responses(401)
)
async def me(user: AuthenticatedUser) -> dict[str, Any]:
    return user.public()


@registration.post(
    "/register",
    response_model=UserOut,
    status_code=201,
    summary="Create an account (when registration is open)",
    responses=error_responses(400, 404, 409, 413, 503),
)
async def register(request: Request, body: RegisterRequest) -> dict[str, Any]:
    if not request.app.state.settings.allow_registration:
        raise NotFound()
    validate_password(body.password, username=body.username, email=body.email)
    hashed = await get_services(request).hasher.hash(body.password)
    values = {
        "username": body.username,
        "email": body.email,
        "hashed_password": hashed,
        "is_active": True,
        "is_staff": False,
        "is_superuser": False,
    }
    # Through the write pipeline as any other create (history, hooks), without the
    # policy: registration is open to anonymous callers by the setting above.
    try:
        row = await WritePipeline.of(request.app).create(User, values, Caller(request, check=False))
    except Conflict:
        raise Conflict("A user with that username already exists.") from None
    created = AuthUser.from_row(row)
    return created.public()


@router.post(
    "/password",
    status_code=204,
    response_class=Response,
    summary="Change the caller's password; every session ends",
    responses=error_responses(400, 401, 413, 429, 503),
)
async def change_password(
    request: Request, body: PasswordChange, user: AuthenticatedUser
) -> Response:
    services = get_services(request)
    client = _client(request)
    # A stolen access token must not buy unlimited guesses at the password: these
    # checks count with the user's logins.
    await services.throttle.reserve(user.username, client)
    ok, _ = await services.hasher.verify(body.current_password, user.hashed_password)
    if not ok:
        raise Invalid.single(["body", "current_password"], "The current password is incorrect.")
    await services.throttle.succeeded(user.username, client)
    validate_password(body.new_password, username=user.username, email=user.email)
    hashed = await services.hasher.hash(body.new_password)
    pipeline = WritePipeline.of(request.app)
    async with pipeline.transaction() as writer:
        # The new hash bumps the token version (`UserResource.before_update`).
        await pipeline.update(
            User, user.id, {"hashed_password": hashed}, Caller(request, check=False)
        )
        await writer.rows(delete(refresh_tokens).where(refresh_tokens.c.user_id == user.id))
    return Response(status_code=204)
