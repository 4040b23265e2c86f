"""Settings: names and prefix of DESIGN.md, clear failures for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

import crudkit
from crudkit.conf import build_settings, load_settings
from crudkit.exceptions import ImproperlyConfigured

SECRET = "s" * 40


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env or key file
    for name in ("CRUDKIT_SECRET_KEY", "CRUDKIT_DEBUG", "CRUDKIT_SETTINGS_MODULE"):
        monkeypatch.delenv(name, raising=False)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRUDKIT_SECRET_KEY", SECRET)
    settings = build_settings()
    assert settings.database_url == "sqlite+aiosqlite:///./db.sqlite3"
    assert settings.api_prefix == "/api/v1"
    assert settings.admin_path == "/admin"
    assert settings.page_size_default == 50
    assert settings.page_size_max == 1000
    assert settings.max_body_size == 1024 * 1024
    assert settings.allow_registration is False
    assert settings.redis_url is None


def test_environment_with_prefix_and_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRUDKIT_SECRET_KEY", SECRET)
    monkeypatch.setenv("CRUDKIT_INSTALLED_APPS", "crudkit.contrib.auth, shop")
    monkeypatch.setenv("CRUDKIT_CORS_ORIGINS", '["https://a.example", "https://b.example"]')
    monkeypatch.setenv("CRUDKIT_PAGE_SIZE_MAX", "200")
    monkeypatch.setenv("CRUDKIT_ALLOW_REGISTRATION", "true")
    settings = build_settings()
    assert settings.installed_apps == ["crudkit.contrib.auth", "shop"]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.page_size_max == 200
    assert settings.allow_registration is True


def test_dotenv_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"CRUDKIT_SECRET_KEY={SECRET}\nCRUDKIT_API_PREFIX=/api/v2/\n")
    settings = build_settings()
    assert settings.api_prefix == "/api/v2"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("database_url", "mysql://x", "only sqlite"),
        ("database_url", "sqlite:///sync.db", "async driver"),
        ("database_url", "not a url", "not a database URL"),
        ("secret_key", "short", "at least 32 bytes"),
        ("page_size_max", "0", "greater than 0"),
        ("page_size_max", "lots", "valid integer"),
        ("api_prefix", "api", "must start with '/'"),
        ("access_token_ttl", "-5", "greater than 0"),
        ("debug", "perhaps", "valid boolean"),
    ],
)
def test_bad_values_fail_clearly(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv("CRUDKIT_SECRET_KEY", SECRET)
    monkeypatch.setenv(f"CRUDKIT_{name.upper()}", value)
    with pytest.raises(ImproperlyConfigured) as caught:
        build_settings()
    text = str(caught.value)
    assert f"CRUDKIT_{name.upper()}" in text
    assert message in text


def test_secret_key_is_required_without_debug() -> None:
    with pytest.raises(ImproperlyConfigured, match="secret_key is required"):
        build_settings()


def test_page_size_default_cannot_exceed_max(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRUDKIT_SECRET_KEY", SECRET)
    monkeypatch.setenv("CRUDKIT_PAGE_SIZE_DEFAULT", "500")
    monkeypatch.setenv("CRUDKIT_PAGE_SIZE_MAX", "100")
    with pytest.raises(ImproperlyConfigured, match="page_size_default"):
        build_settings()


def test_debug_generates_and_keeps_a_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CRUDKIT_DEBUG", "1")
    first = build_settings()
    key_file = tmp_path / ".crudkit-secret-key"
    assert key_file.exists()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert len(first.secret_key) >= 32
    assert build_settings().secret_key == first.secret_key


def test_settings_module_subclass_keeps_env_overrides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "mysettings.py").write_text(
        "import crudkit\n"
        "class Settings(crudkit.Settings):\n"
        "    allow_registration: bool = True\n"
        "    installed_apps: list[str] = ['crudkit.contrib.auth']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CRUDKIT_SECRET_KEY", SECRET)
    monkeypatch.setenv("CRUDKIT_INSTALLED_APPS", "crudkit.contrib.auth,crudkit.contrib.admin")
    settings = load_settings("mysettings")
    assert settings.allow_registration is True
    assert settings.installed_apps == ["crudkit.contrib.auth", "crudkit.contrib.admin"]


def test_unimportable_settings_module() -> None:
    with pytest.raises(ImproperlyConfigured, match="cannot import settings module 'no_such'"):
        load_settings("no_such")


def test_settings_class_is_exported() -> None:
    assert crudkit.Settings is crudkit.conf.Settings
