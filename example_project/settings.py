"""Settings of the example project. Environment variables (CRUDKIT_*) override them."""

from __future__ import annotations

from pathlib import Path

import crudkit

BASE_DIR = Path(__file__).resolve().parent


class Settings(crudkit.Settings):
    installed_apps: list[str] = ["crudkit.contrib.auth", "crudkit.contrib.admin", "shop"]
    allow_registration: bool = True
    # A demo: debug on unless CRUDKIT_DEBUG=false (then CRUDKIT_SECRET_KEY is required).
    debug: bool = True
    database_url: str = f"sqlite+aiosqlite:///{BASE_DIR / 'db.sqlite3'}"
    secret_key_file: Path = BASE_DIR / ".crudkit-secret-key"


settings = Settings()
