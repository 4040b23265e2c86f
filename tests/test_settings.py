"""Settings: names and prefix of the settings reference, clear failures for bad values."""

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


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("CRUDKIT_HTTPS_ONY", "did you mean CRUDKIT_HTTPS_ONLY?"),
        ("crudkit_https_ony", "did you mean CRUDKIT_HTTPS_ONLY?"),  # read case-insensitively
        ("CRUDKIT_ALLOWED_HOST", "did you mean CRUDKIT_ALLOWED_HOSTS?"),
        ("CRUDKIT_SETTINGS_MODUL", "did you mean CRUDKIT_SETTINGS_MODULE?"),
        ("CRUDKIT_ZZZ", "unset it, or declare the setting in the project's Settings"),
    ],
)
def test_a_variable_that_names_no_setting_fails(
    monkeypatch: pytest.MonkeyPatch, variable: str, suggestion: str
) -> None:
    monkeypatch.setenv("CRUDKIT_SECRET_KEY", SECRET)
    monkeypatch.setenv(variable, "1")
    with pytest.raises(ImproperlyConfigured) as caught:
        build_settings()
    assert str(caught.value) == (
        f"invalid settings:\n  {variable.upper()} names no setting: {suggestion}"
    )


def test_a_misspelt_variable_is_named_before_what_it_caused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRUDKIT_SECRET_KY", SECRET)  # else: "secret_key is required"
    with pytest.raises(ImproperlyConfigured, match="did you mean CRUDKIT_SECRET_KEY"):
        build_settings()


def test_a_misspelt_variable_in_dotenv_fails(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"CRUDKIT_SECRET_KEY={SECRET}\nCRUDKIT_PAGE_SIZE_MAXX=10\n")
    with pytest.raises(ImproperlyConfigured, match="did you mean CRUDKIT_PAGE_SIZE_MAX"):
        build_settings()
    # A settings object told to read no .env file does not look at it either.
    assert crudkit.Settings(secret_key=SECRET, _env_file=None)  # type: ignore[call-arg]


def test_variables_that_are_not_settings_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRUDKIT_SECRET_KEY", SECRET)
    for name in (
        "CRUDKIT_SUPERUSER_USERNAME",
        "CRUDKIT_SUPERUSER_EMAIL",
        "CRUDKIT_SUPERUSER_PASSWORD",
        "CRUDKIT_TEST_DATABASE_URL",
        "CRUDKIT_TEST_SOMETHING_NEW",
        "OTHER_HTTPS_ONY",
    ):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("CRUDKIT_SETTINGS_MODULE", "")  # build_settings reads no module
    assert build_settings().secret_key == SECRET


def test_a_project_setting_is_known_by_its_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "shopsettings.py").write_text(
        "import crudkit\nclass Settings(crudkit.Settings):\n    shop_name: str = 'Shop'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CRUDKIT_SECRET_KEY", SECRET)
    monkeypatch.setenv("CRUDKIT_SHOP_NAME", "Lamps")
    assert load_settings("shopsettings").model_dump()["shop_name"] == "Lamps"
    monkeypatch.delenv("CRUDKIT_SHOP_NAME")
    monkeypatch.setenv("CRUDKIT_SHOP_NAM", "Lamps")
    with pytest.raises(ImproperlyConfigured, match="did you mean CRUDKIT_SHOP_NAME"):
        load_settings("shopsettings")


def test_allowed_hosts_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRUDKIT_SECRET_KEY", SECRET)
    monkeypatch.setenv("CRUDKIT_ALLOWED_HOSTS", "API.example.com, .example.org,*.shop.test,::1,*")
    assert build_settings().allowed_hosts == [
        "api.example.com",
        ".example.org",
        "*.shop.test",
        "[::1]",
        "*",
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("https://example.com", "not a host name"),
        ("example.com/admin", "not a host name"),
        ("example.com:8000", "leave the port out"),
        ('["[::1]:8000"]', "leave the port out"),
        ("api.*.example.com", "'*' stands alone"),
    ],
)
def test_bad_allowed_hosts_fail_clearly(
    monkeypatch: pytest.MonkeyPatch, entry: str, message: str
) -> None:
    monkeypatch.setenv("CRUDKIT_SECRET_KEY", SECRET)
    monkeypatch.setenv("CRUDKIT_ALLOWED_HOSTS", entry)
    with pytest.raises(ImproperlyConfigured, match="CRUDKIT_ALLOWED_HOSTS") as caught:
        build_settings()
    assert message in str(caught.value)


def test_docs_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRUDKIT_SECRET_KEY", SECRET)
    assert build_settings().docs_url == "/docs"
    monkeypatch.setenv("CRUDKIT_DOCS_URL", "")
    assert build_settings().docs_url is None
    monkeypatch.setenv("CRUDKIT_DOCS_URL", "api-docs")
    with pytest.raises(ImproperlyConfigured, match="CRUDKIT_DOCS_URL"):
        build_settings()
