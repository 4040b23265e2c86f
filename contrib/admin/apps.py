"""The admin app: a sqladmin panel over every registered resource, and the history of changes.

It plugs in as any app does, from `ready()`: its models module holds
`LogEntry` (the history table), its resources module registers it, the write
hook records every create, update and delete of every channel, and once the
FastAPI app is built, `install_admin` mounts the panel at the `admin_path`
setting. It needs `crudkit.contrib.auth`, whose users log in to it.
"""

from __future__ import annotations

from fastapi import FastAPI

from crudkit.apps import AppConfig
from crudkit.exceptions import ImproperlyConfigured


class AdminConfig(AppConfig):
    name = "crudkit.contrib.admin"
    label = "admin"
    verbose_name = "Administration"
    models_module = "models"
    resources_module = "resources"

    def ready(self) -> None:
        if "auth" not in self.apps.configs:
            raise ImproperlyConfigured(
                "crudkit.contrib.admin needs crudkit.contrib.auth in installed_apps "
                "(its users log in to the admin)"
            )
        super().ready()
        from crudkit.contrib.admin.history import record

        apps = self.apps
        apps.on_writes(record)

        def install(app: FastAPI) -> None:
            from crudkit.contrib.admin.site import install_admin

            install_admin(app, apps)

        apps.on_app(install)
