"""Apps: the packages listed in `installed_apps`, each described by an `AppConfig`.

Loading happens in three steps, as in Django: make a config per app, import every
app's models, then call each config's `ready()`. `ready()` is the one hook an app
plugs in through; contrib apps use it exactly as a project's own apps do::

    # shop/apps.py
    class ShopConfig(crudkit.AppConfig):
        name = "shop"

        def ready(self) -> None:
            super().ready()                    # imports shop.resources
            self.apps.add_command(seed)        # a `manage.py seed` command

An app's config is the single `AppConfig` subclass in its `apps` module, or a
plain `AppConfig` when there is none.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crudkit.db import Model
from crudkit.exceptions import ImproperlyConfigured
from crudkit.registry import Registry, default_registry

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter, FastAPI
    from sqlalchemy.ext.asyncio import AsyncConnection

    from crudkit.authentication import Authenticator
    from crudkit.check_messages import Message
    from crudkit.conf import Settings
    from crudkit.events import WriteEvent, WriteHook, WritesHook
    from crudkit.resources import Resource

AppHook = Callable[["FastAPI"], None]
PostMigrateHook = Callable[["Apps", "AsyncConnection"], Awaitable[object]]
ShutdownHook = Callable[[], Awaitable[object]]
ReadinessProbe = Callable[["FastAPI"], Awaitable[object]]
Check = Callable[["Apps"], list["Message"]]
"""A system check (`crudkit.checks`): the populated apps in, its findings out."""


class AppConfig:
    """Describes one installed app; subclass it in the app's `apps` module."""

    name: str = ""
    """Dotted path of the app's package, e.g. `shop` or `crudkit.contrib.auth`."""
    label: str = ""
    """Short unique name for permission codenames and migrations; default: end of `name`."""
    verbose_name: str = ""
    """Human-readable name shown in the admin."""
    models_module: str | None = "models"
    """Module imported before `ready()` so every model is known; `None` for none."""
    resources_module: str | None = "resources"
    """Module the default `ready()` imports, where `crudkit.register(...)` calls live."""
    migrations_module: str = "migrations"
    """Package holding the app's migration scripts."""

    def __init__(self, name: str, apps: Apps) -> None:
        self.name = self.name or name
        self.label = self.label or self.name.rsplit(".", 1)[-1]
        if not self.label.isidentifier():
            raise ImproperlyConfigured(f"app label {self.label!r} is not a valid identifier")
        self.verbose_name = self.verbose_name or self.label.replace("_", " ").title()
        self.apps = apps
        try:
            self.module = importlib.import_module(self.name)
        except ImportError as exc:
            raise ImproperlyConfigured(f"cannot import installed app {self.name!r}: {exc}") from exc

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.label}>"

    @property
    def path(self) -> Path:
        """The directory of the app's package."""
        file = getattr(self.module, "__file__", None)
        if file is None:
            raise ImproperlyConfigured(f"app {self.name!r} is not a regular package")
        return Path(file).resolve().parent

    @property
    def migrations_path(self) -> Path:
        return self.path / self.migrations_module.replace(".", "/")

    def _import_submodule(self, name: str | None) -> None:
        if not name:
            return
        full = f"{self.name}.{name}"
        if importlib.util.find_spec(full) is not None:
            importlib.import_module(full)

    def import_models(self) -> None:
        self._import_submodule(self.models_module)

    def ready(self) -> None:
        """Called once every app's models are imported; registers resources by default."""
        self._import_submodule(self.resources_module)

    def owns_module(self, module: str) -> bool:
        return module == self.name or module.startswith(self.name + ".")


def _config_class(name: str) -> tuple[type[AppConfig], str]:
    """The config class for an `installed_apps` entry: a package or an AppConfig path."""
    module_name, _, attr = name.rpartition(".")
    if module_name:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            module = None
        candidate = getattr(module, attr, None)
        if isinstance(candidate, type) and issubclass(candidate, AppConfig):
            if not candidate.name:
                raise ImproperlyConfigured(f"{name} must set `name`")
            return candidate, candidate.name
    apps_module = f"{name}.apps"
    try:
        found = importlib.util.find_spec(apps_module) is not None
    except ModuleNotFoundError as exc:
        raise ImproperlyConfigured(f"cannot import installed app {name!r}: {exc}") from exc
    if found:
        module = importlib.import_module(apps_module)
        configs = [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, AppConfig)
            and value.__module__ == apps_module
        ]
        if len(configs) == 1:
            return configs[0], name
        if len(configs) > 1:
            raise ImproperlyConfigured(
                f"{apps_module} declares several AppConfig classes; list the one to use in "
                f"installed_apps, e.g. {apps_module}.{configs[0].__name__}"
            )
    return AppConfig, name


class Apps:
    """The installed apps of one project, and what their `ready()` hooks contribute."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self._explicit_registry = registry is not None
        self.registry = registry if registry is not None else default_registry
        self.configs: dict[str, AppConfig] = {}
        self.routers: list[APIRouter] = []
        self.commands: list[click.Command] = []
        self.checks: list[Check] = []
        self.app_hooks: list[AppHook] = []
        self.post_migrate_hooks: list[PostMigrateHook] = []
        self.shutdown_hooks: list[ShutdownHook] = []
        self.write_hooks: list[WriteHook] = []
        self.batch_write_hooks: list[WritesHook] = []
        self.readiness_probes: dict[str, ReadinessProbe] = {}
        self.authenticator: Authenticator | None = None
        self.token_url: str | None = None
        self.ready = False

    def populate(self) -> Apps:
        """Create every app's config, import their models, then call `ready()` on each."""
        if self.ready:
            return self
        for entry in self.settings.installed_apps:
            config_cls, name = _config_class(entry)
            config = config_cls(name, self)
            if config.label in self.configs:
                raise ImproperlyConfigured(
                    f"app labels must be unique; {config.label!r} is used by "
                    f"{self.configs[config.label].name} and {config.name}"
                )
            self.configs[config.label] = config
        for config in self.configs.values():
            config.import_models()
        for config in self.configs.values():
            config.ready()
        self.ready = True
        return self

    def __iter__(self) -> Iterator[AppConfig]:
        return iter(self.configs.values())

    def get_app_config(self, label: str) -> AppConfig:
        try:
            return self.configs[label]
        except KeyError:
            installed = ", ".join(self.configs) or "none"
            raise ImproperlyConfigured(
                f"no installed app with label {label!r} (installed: {installed})"
            ) from None

    def app_for_module(self, module: str) -> AppConfig | None:
        owners = [config for config in self.configs.values() if config.owns_module(module)]
        return max(owners, key=lambda config: len(config.name), default=None)

    def get_models(self, app_label: str | None = None) -> list[type[Any]]:
        """Mapped model classes of the installed apps (or one app), in declaration order."""
        found = []
        for mapper in Model.registry.mappers:
            model = mapper.class_
            config = self.app_for_model(model)
            if config is None or (app_label is not None and config.label != app_label):
                continue
            found.append(model)
        return found

    def app_for_model(self, model: type[Any]) -> AppConfig | None:
        label = getattr(model, "__app_label__", None)
        if label:
            return self.configs.get(label)
        return self.app_for_module(model.__module__)

    @property
    def resources(self) -> list[Resource]:
        """Resources this project serves: those of installed apps' models."""
        resources = list(self.registry)
        if self._explicit_registry:
            return resources
        return [resource for resource in resources if self.app_for_model(resource.model)]

    # Contributions made from AppConfig.ready().

    def add_router(self, router: APIRouter) -> None:
        """Routes included under `api_prefix`."""
        self.routers.append(router)

    def add_command(self, command: click.Command) -> None:
        """A command for `manage.py`."""
        self.commands.append(command)

    def add_check(self, check: Check) -> None:
        """A system check run by `manage.py check`."""
        self.checks.append(check)

    def on_app(self, hook: AppHook) -> None:
        """Called with the FastAPI app once it is built (to mount sub-applications)."""
        self.app_hooks.append(hook)

    def on_post_migrate(self, hook: PostMigrateHook) -> None:
        """Called after `migrate` with a connection inside its transaction."""
        self.post_migrate_hooks.append(hook)

    def add_readiness_probe(self, name: str, probe: ReadinessProbe) -> None:
        """A check `/readyz` runs: raise to report the service unavailable (503); return
        a string other than "ok" to report the app degraded but still serving (200)."""
        self.readiness_probes[name] = probe

    def on_write(self, hook: WriteHook) -> None:
        """Awaited after every create, update and delete, inside its transaction."""
        self.write_hooks.append(hook)

    def on_writes(self, hook: WritesHook) -> None:
        """As `on_write`, for a hook that takes a list of events: the rows a bulk request
        writes together reach it in one call."""
        self.batch_write_hooks.append(hook)

    @property
    def has_write_hooks(self) -> bool:
        return bool(self.write_hooks or self.batch_write_hooks)

    async def notify_write(self, conn: AsyncConnection, event: WriteEvent) -> None:
        await self.notify_writes(conn, (event,))

    async def notify_writes(self, conn: AsyncConnection, events: Sequence[WriteEvent]) -> None:
        """Tell every write hook about `events`, in order, inside their transaction."""
        for hook in self.write_hooks:
            for event in events:
                await hook(conn, event)
        for batch_hook in self.batch_write_hooks:
            await batch_hook(conn, events)

    def on_shutdown(self, hook: ShutdownHook) -> None:
        """Awaited when the app stops (close clients, pools)."""
        self.shutdown_hooks.append(hook)

    def set_authenticator(
        self, authenticator: Authenticator, *, token_url: str | None = None
    ) -> None:
        """The authentication used by the API (one per project), and where clients get a
        token: the `token_url` of the OAuth2 password flow that `/docs` offers."""
        if self.authenticator is not None and self.authenticator is not authenticator:
            raise ImproperlyConfigured("two installed apps both set the API authenticator")
        self.authenticator = authenticator
        self.token_url = token_url
