"""JSON Web Tokens through PyJWT: HS256, exactly one algorithm, required claims.

Access tokens are short-lived; refresh tokens rotate (each is used once). Every
token carries `sub`, `type`, `jti`, `iat`, `exp` and `ver`, the user's token
version: bumping it (logout, password change, deactivation, a refresh token
replayed) ends every session.

The header's `kid` names the key: tokens are signed with `secret_key` and still
verified with `secret_key_fallbacks` after a rotation.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from crudkit.exceptions import ImproperlyConfigured, NotAuthenticated

ALGORITHM = "HS256"
MIN_KEY_BYTES = 32
REQUIRED_CLAIMS = ["exp", "iat", "sub", "type", "jti"]
VERIFIED_TOKENS = 4096
"""Access tokens whose verified claims are kept per worker (see `TokenCodec.decode`)."""

TokenType = Literal["access", "refresh"]


def key_id(key: str) -> str:
    return hashlib.sha256(b"crudkit.jwt:" + key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: float


class TokenCodec:
    """Signs and verifies the project's tokens."""

    def __init__(
        self,
        secret_key: str,
        *,
        fallbacks: list[str] | None = None,
        access_ttl: int = 900,
        refresh_ttl: int = 14 * 24 * 3600,
    ) -> None:
        keys = [secret_key, *(fallbacks or [])]
        for key in keys:
            if len(key.encode()) < MIN_KEY_BYTES:
                raise ImproperlyConfigured(
                    f"JWT signing keys must be at least {MIN_KEY_BYTES} bytes long"
                )
        self._signing_key = secret_key
        self._signing_kid = key_id(secret_key)
        self._keys = {key_id(key): key for key in keys}
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._verified: dict[str, dict[str, Any]] = {}

    def issue(
        self, user_id: Any, token_type: TokenType, version: int, **claims: Any
    ) -> IssuedToken:
        now = int(time.time())
        ttl = self.access_ttl if token_type == "access" else self.refresh_ttl
        jti = secrets.token_urlsafe(24)
        payload = {
            "sub": str(user_id),
            "type": token_type,
            "jti": jti,
            "iat": now,
            "exp": now + ttl,
            "ver": version,
            **claims,
        }
        token = jwt.encode(
            payload, self._signing_key, algorithm=ALGORITHM, headers={"kid": self._signing_kid}
        )
        return IssuedToken(token, jti, now + ttl)

    def decode(self, token: str, expected_type: TokenType) -> dict[str, Any]:
        """The claims of a valid token of `expected_type`; `NotAuthenticated` otherwise.

        An access token is sent with every request of its client: once verified, its
        claims are kept (by the exact token text) until it expires, so the next
        requests skip the signature check. Revocation does not depend on this: the
        caller's token version is compared with the database on every request.
        """
        if expected_type == "access":
            claims = self._verified.get(token)
            if claims is not None:
                if claims["exp"] > time.time():
                    return claims
                del self._verified[token]
        claims = self._decode(token, expected_type)
        if expected_type == "access":
            if len(self._verified) >= VERIFIED_TOKENS:
                self._verified.clear()
            self._verified[token] = claims
        return claims

    def _decode(self, token: str, expected_type: TokenType) -> dict[str, Any]:
        invalid = NotAuthenticated("Invalid or expired token.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise invalid from None
        key = self._keys.get(header.get("kid", self._signing_kid))
        if key is None or header.get("alg") != ALGORITHM:
            raise invalid
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError:
            raise invalid from None
        if claims.get("type") != expected_type or not isinstance(claims.get("ver"), int):
            raise invalid
        return claims
