"""The auth app: users, groups, permissions, JWT authentication and user commands."""

from __future__ import annotations

from fastapi import FastAPI

from crudkit.apps import AppConfig


class AuthConfig(AppConfig):
    name = "crudkit.contrib.auth"
    label = "auth"
    verbose_name = "Authentication and authorization"

    def ready(self) -> None:
        super().ready()
        from crudkit.contrib.auth.deps import AuthServices, JWTAuthentication
        from crudkit.contrib.auth.hashing import check_passlib
        from crudkit.contrib.auth.permissions_sync import create_permissions
        from crudkit.contrib.auth.routes import router

        check_passlib()
        apps = self.apps
        apps.add_router(router)
        apps.set_authenticator(JWTAuthentication())
        apps.on_post_migrate(create_permissions)

        def install(app: FastAPI) -> None:
            services = AuthServices.from_settings(apps.settings)
            app.state.auth = services
            apps.on_shutdown(services.close)

        apps.on_app(install)
