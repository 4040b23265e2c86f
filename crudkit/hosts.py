"""Which `Host` a request may name: setting `allowed_hosts`, checked by Starlette's
`TrustedHostMiddleware` (another host, or none, gets 400).

Redirects and absolute URLs are built from the request's `Host`: answering any
host would let a forged one put another domain in them. Entries are written as in
Django: `api.example.com`; `.example.com` for it and its subdomains (Starlette's
`*.example.com` is accepted too, for the subdomains alone); `*` for any host.
IPv6 addresses go in brackets (`[::1]`); ports are not part of an entry. With
`debug` on, the localhost names are allowed besides the list.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from starlette.middleware.trustedhost import TrustedHostMiddleware

from crudkit.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from fastapi import FastAPI

    from crudkit.conf import Settings

LOCAL_HOSTS = ("localhost", ".localhost", "127.0.0.1", "[::1]")
"""Allowed in addition to `allowed_hosts` when `debug` is on."""


def normalize_host(entry: str) -> str:
    """One entry of `allowed_hosts`, lower-cased; ValueError for what can never match."""
    host = entry.strip().lower()
    if host == "*":
        return host
    if not host or "://" in host or "/" in host:
        raise ValueError(f"{entry!r} is not a host name (write api.example.com, without scheme)")
    domain = host[2:] if host.startswith("*.") else host
    if "*" in domain:
        raise ValueError(f"{entry!r}: '*' stands alone, or starts '*.example.com'")
    if ":" in host and not host.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(host)}]"
        except ValueError:
            raise ValueError(f"{entry!r}: leave the port out of allowed_hosts") from None
    if host.startswith("[") and not host.endswith("]"):
        raise ValueError(f"{entry!r}: leave the port out of allowed_hosts")
    return host


def host_patterns(settings: Settings) -> list[str]:
    """`allowed_hosts` (with localhost names in debug) as `TrustedHostMiddleware` patterns."""
    hosts = [*settings.allowed_hosts, *(LOCAL_HOSTS if settings.debug else ())]
    if not hosts:
        raise ImproperlyConfigured(
            "allowed_hosts is empty and debug is off: set CRUDKIT_ALLOWED_HOSTS to the host "
            "names the app is served at (e.g. api.example.com,.example.com), or '*' for any"
        )
    patterns: list[str] = []
    for host in hosts:
        if host.startswith("."):  # Django's form: the domain and its subdomains
            patterns += [host[1:], "*" + host]
        else:
            patterns.append(host)
    return list(dict.fromkeys(patterns))


def is_allowed(settings: Settings, host: str) -> bool:
    """Whether a request for `host` (no port) is answered, as `TrustedHostMiddleware` decides."""
    host = host.lower()
    for pattern in host_patterns(settings):
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith("*") and host.endswith(pattern[1:]):
            return True
    return False


def install(app: FastAPI, patterns: list[str]) -> None:
    """Answer 400 to a request for a host outside `patterns` (see `host_patterns`)."""
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=patterns, www_redirect=False)
