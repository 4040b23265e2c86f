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
        from crudkit.contrib.auth.commands import changepassword, createsuperuser, createuser
        from crudkit.contrib.auth.deps import AuthServices, JWTAuthentication
        from crudkit.contrib.auth.hashing import check_passlib
        from crudkit.contrib.auth.hashing import configure as configure_hashing
        from crudkit.contrib.auth.permissions_sync import create_permissions
        from crudkit.contrib.auth.routes import registration, router
        from crudkit.counters import StoreUnavailable

        check_passlib()
        apps = self.apps
        settings = apps.settings
        configure_hashing(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
        )
        apps.add_router(router)
        if settings.allow_registration:  # else not served, nor listed by `routes`
            apps.add_router(registration)
        token_url = settings.api_prefix + router.url_path_for("token")
        apps.set_authenticator(JWTAuthentication(), token_url=token_url)
        apps.on_post_migrate(create_permissions)
        for command in (createsuperuser, createuser, changepassword):
            apps.add_command(command)

        def install(app: FastAPI) -> None:
            services = AuthServices.from_settings(apps.settings)
            app.state.auth = services
            apps.on_shutdown(services.close)

        async def redis_answers(app: FastAPI) -> str:
            # Down, Redis degrades the app rather than stopping it: report, stay ready.
            try:
                await app.state.auth.counters.ping()
            except StoreUnavailable:
                return "unavailable (login throttling falls back to each worker's memory)"
            return "ok"

        apps.on_app(install)
        if settings.redis_url:
            apps.add_readiness_probe("redis", redis_answers)
