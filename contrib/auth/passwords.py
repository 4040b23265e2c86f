"""Password rules, as Django's default validators: length, numeric, similarity, common.

The common-password list is Django's (`common-passwords.txt.gz`, 20,000 entries,
from Royce Williams' list), shipped as package data.
"""

from __future__ import annotations

import gzip
import re
from difflib import SequenceMatcher
from functools import cache
from importlib.resources import files

from crudkit.contrib.auth.hashing import MAX_PASSWORD_LENGTH

MIN_LENGTH = 8
MAX_SIMILARITY = 0.7


@cache
def common_passwords() -> frozenset[str]:
    data = files("crudkit.contrib.auth").joinpath("common-passwords.txt.gz").read_bytes()
    return frozenset(line.strip() for line in gzip.decompress(data).decode().splitlines())


def _too_similar(password: str, attribute: str) -> bool:
    # Compare with the whole value and with its parts ("john.smith" -> "john", "smith").
    value = attribute.lower()
    if not value:
        return False
    parts = {value, *re.split(r"\W+", value)}
    lowered = password.lower()
    return any(
        part
        and SequenceMatcher(a=lowered, b=part).quick_ratio() >= MAX_SIMILARITY
        and SequenceMatcher(a=lowered, b=part).ratio() >= MAX_SIMILARITY
        for part in parts
    )


def password_problems(password: str, *, username: str = "", email: str = "") -> list[str]:
    """Every rule `password` breaks, as sentences; empty when it is acceptable."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(
            f"This password is too short. It must contain at least {MIN_LENGTH} characters."
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"This password is too long (at most {MAX_PASSWORD_LENGTH} characters).")
    if password.isdigit():
        problems.append("This password is entirely numeric.")
    for name, value in (("username", username), ("email address", email)):
        if value and _too_similar(password, value):
            problems.append(f"The password is too similar to the {name}.")
    if password.lower().strip() in common_passwords():
        problems.append("This password is too common.")
    return problems
