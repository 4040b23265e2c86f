"""Forged, expired and revoked tokens are all 401; key rotation keeps old tokens valid."""

from __future__ import annotations

import base64
import json
import time
import warnings
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

import crudkit
from crudkit.contrib.auth.testing import create_user
from crudkit.contrib.auth.tokens import TokenCodec, key_id
from crudkit.exceptions import ImproperlyConfigured, NotAuthenticated
from crudkit.testing import client_for, create_tables
from tests.conftest import TEST_SECRET

ME = "/api/v1/auth/me"


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def claims(user_id: int, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": str(user_id),
        "type": "access",
        "jti": "j",
        "iat": now,
        "exp": now + 60,
        "ver": 0,
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def sign(payload: dict[str, Any], key: str = TEST_SECRET, **headers: Any) -> str:
    return jwt.encode(payload, key, algorithm="HS256", headers={"kid": key_id(key), **headers})


def hs512(payload: dict[str, Any]) -> str:
    # Signed with the right secret, but by an algorithm the project does not accept.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode(
            payload, TEST_SECRET, algorithm="HS512", headers={"kid": key_id(TEST_SECRET)}
        )


@pytest.fixture
async def user_id(app: FastAPI) -> int:
    return await create_user(app, "alice")


async def status_with(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get(ME, headers={"Authorization": f"Bearer {token}"})).status_code


async def test_a_well_formed_token_works(client: httpx.AsyncClient, user_id: int) -> None:
    assert await status_with(client, sign(claims(user_id))) == 200


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(
            lambda uid: b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims(uid)) + ".",
            id="alg-none",
        ),
        pytest.param(
            lambda uid: sign(claims(uid), key="another-secret-key-that-is-32-bytes!!"),
            id="other-key",
        ),
        pytest.param(
            lambda uid: sign(claims(uid), kid=key_id(TEST_SECRET))[:-4] + "AAAA", id="bad-signature"
        ),
        pytest.param(lambda uid: sign(claims(uid, exp=int(time.time()) - 5)), id="expired"),
        pytest.param(lambda uid: sign(claims(uid, exp=None)), id="no-exp"),
        pytest.param(lambda uid: sign(claims(uid, iat=None)), id="no-iat"),
        pytest.param(lambda uid: sign(claims(uid, sub=None)), id="no-sub"),
        pytest.param(lambda uid: sign(claims(uid, type=None)), id="no-type"),
        pytest.param(lambda uid: sign(claims(uid, type="refresh")), id="refresh-as-access"),
        pytest.param(lambda uid: sign(claims(uid, ver=1)), id="old-version"),
        pytest.param(lambda uid: sign(claims(uid, ver="0")), id="version-not-int"),
        pytest.param(lambda uid: sign(claims(uid + 100)), id="unknown-user"),
        pytest.param(lambda uid: sign(claims(uid, sub="alice")), id="sub-not-an-id"),
        pytest.param(lambda uid: sign(claims(uid), kid="unknown-kid"), id="unknown-kid"),
        pytest.param(lambda uid: hs512(claims(uid)), id="hs512"),
        pytest.param(lambda uid: "a.b.c", id="garbage"),
    ],
)
async def test_forged_tokens_are_401(client: httpx.AsyncClient, user_id: int, forge: Any) -> None:
    response = await client.get(ME, headers={"Authorization": f"Bearer {forge(user_id)}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_tampered_sub_is_401(app: FastAPI, client: httpx.AsyncClient, user_id: int) -> None:
    other = await create_user(app, "bob")
    header, _payload, signature = sign(claims(user_id)).split(".")
    forged = f"{header}.{b64(claims(other))}.{signature}"
    assert await status_with(client, forged) == 401


async def test_rotated_key_still_verifies_old_tokens(settings: crudkit.Settings) -> None:
    new_secret = "a-brand-new-secret-key-of-enough-length-0123"
    rotated = crudkit.create_app(
        settings.model_copy(
            update={"secret_key": new_secret, "secret_key_fallbacks": [TEST_SECRET]}
        )
    )
    await create_tables(rotated)
    user = await create_user(rotated, "alice")
    async with client_for(rotated) as client:
        assert await status_with(client, sign(claims(user))) == 200  # old key, verify-only
        assert await status_with(client, sign(claims(user), key=new_secret)) == 200
        stranger = "some-other-project-secret-key-32bytes"
        assert await status_with(client, sign(claims(user), key=stranger)) == 401
    await rotated.state.db.dispose()


def test_codec_refuses_short_keys() -> None:
    with pytest.raises(ImproperlyConfigured):
        TokenCodec("too-short")


def test_codec_pins_the_algorithm() -> None:
    codec = TokenCodec(TEST_SECRET)
    issued = codec.issue(1, "access", 0)
    assert jwt.get_unverified_header(issued.token) == {
        "alg": "HS256",
        "kid": key_id(TEST_SECRET),
        "typ": "JWT",
    }
    assert set(codec.decode(issued.token, "access")) == {"sub", "type", "jti", "iat", "exp", "ver"}
    with pytest.raises(NotAuthenticated):
        codec.decode(issued.token, "refresh")


def test_a_verified_access_token_is_refused_once_expired() -> None:
    codec = TokenCodec(TEST_SECRET, access_ttl=1)
    token = codec.issue(7, "access", 0).token
    assert codec.decode(token, "access")["sub"] == "7"
    assert codec.decode(token, "access")["sub"] == "7"  # kept, not verified again
    with pytest.raises(NotAuthenticated):
        codec.decode(token, "refresh")  # the type is still checked
    with pytest.raises(NotAuthenticated):
        codec.decode(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), "access")
    time.sleep(2.05)  # past `exp`, whatever fraction of a second it was issued at
    with pytest.raises(NotAuthenticated):
        codec.decode(token, "access")
