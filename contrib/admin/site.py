"""The admin site: sqladmin's `Admin`, mounted at `admin_path`, over every admin resource.

    install_admin(app, apps)      # from AdminConfig.ready(), through apps.on_app

`CrudkitAdmin` is sqladmin's `Admin` with crudkit's templates and statics
first in line, staff login (`StaffAuthentication`), the resources'
permissions (`ResourceAuthorization`), CSRF checks, error pages
(`ErrorPageMiddleware`) and pages no site may frame (`DenyFramingMiddleware`).
A resource's `@crudkit.action(admin=True)` methods are admin actions
(`actions.py`). Four of sqladmin's endpoints change: the index
lists the apps and models the user may see (`dashboard.py`), a refused login
re-shows the form with the reason (429 when throttled), logout only
happens on POST (GET shows a confirmation form), so a link on another site
cannot log anyone out, and a delete that names no rows is a 400 while one that
names several deletes all of them or none.

The admin is a Starlette app of its own, so in an admin request `request.app`
is that app, not the project's. Its `state` *is* the project app's `state`:
code written for the API, such as a resource's `before_create` reading
`request.app.state.db`, works unchanged when the admin calls it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from sqladmin import Admin
from sqladmin.authentication import login_required
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from crudkit.apps import Apps
from crudkit.contrib.admin._sqladmin import serve_actions_on_post
from crudkit.contrib.admin.actions import add_admin_actions
from crudkit.contrib.admin.auth import LoginRefused, StaffAuthentication
from crudkit.contrib.admin.csrf import csrf_input, csrf_token
from crudkit.contrib.admin.dashboard import app_groups, recent_actions
from crudkit.contrib.admin.error_pages import EXPLANATIONS, ErrorPageMiddleware, way_back
from crudkit.contrib.admin.framing import DenyFramingMiddleware
from crudkit.contrib.admin.history_view import change_lines, history_view
from crudkit.contrib.admin.models import LogEntry
from crudkit.contrib.admin.options import local_time
from crudkit.contrib.admin.permissions import ResourceAuthorization
from crudkit.contrib.admin.users import user_view
from crudkit.contrib.admin.views import ResourceView, identities, view_for
from crudkit.contrib.admin.writes import deleted_rows, raise_failure
from crudkit.contrib.auth.models import User
from crudkit.db import Database
from crudkit.writes import WritePipeline

HERE = Path(__file__).resolve().parent
TITLE = "crudkit administration"
INDEX_TEMPLATE = "crudkit_admin/index.html"
LOGIN_TEMPLATE = "sqladmin/login.html"
LOGOUT_TEMPLATE = "crudkit_admin/logout.html"


class CrudkitAdmin(Admin):
    """sqladmin's `Admin` with crudkit's index, login, logout, templates and error pages."""

    def __init__(self, app: FastAPI, apps: Apps) -> None:
        settings = apps.settings
        db: Database = app.state.db
        self.apps = apps
        self.authorization = ResourceAuthorization()
        super().__init__(
            app,
            engine=db.engine,
            base_url=settings.admin_path,
            title=TITLE,
            templates_dir=str(HERE / "templates"),
            middlewares=[
                Middleware(DenyFramingMiddleware),
                Middleware(ErrorPageMiddleware, admin=self),
            ],
            authentication_backend=StaffAuthentication(app, settings),
            authorization_backend=self.authorization,
            static_files_kwargs={"directory": HERE / "statics"},
        )
        self.admin.state = app.state  # see the module docstring
        self.templates.env.globals.update(
            csrf_token=csrf_token,
            csrf_input=csrf_input,
            change_lines=change_lines,
            local_time=local_time,
            way_back=way_back,
            explanations=EXPLANATIONS,
        )
        for route in self.admin.router.routes:
            if isinstance(route, Route) and route.name == "logout":
                route.methods = {"GET", "HEAD", "POST"}

    def add_resource_view(self, view: type[ResourceView]) -> None:
        view.apps = self.apps
        actions = add_admin_actions(view, self.apps.settings)
        self.authorization.add(view.identity, view.policy)
        self.add_view(view)
        serve_actions_on_post(self, view.identity, actions)

    @login_required
    async def index(self, request: Request) -> Response:
        context = {
            "title": "Site administration",
            "app_groups": await app_groups(self.apps, self.views, request),
            "recent_actions": await recent_actions(self.session_maker, self.views, request),
        }
        return await self.templates.TemplateResponse(request, INDEX_TEMPLATE, context)

    async def login(self, request: Request) -> Response:
        try:
            return await super().login(request)
        except LoginRefused as refused:
            response = await self.templates.TemplateResponse(
                request,
                LOGIN_TEMPLATE,
                {"error": refused.message},
                status_code=refused.status_code,
            )
            response.headers.update(refused.headers)
            return response

    # A save that met an error crudkit cannot explain is the 500 page (`writes.py`).

    async def create(self, request: Request) -> Response:
        response: Response = await super().create(request)
        raise_failure(request)
        return response

    async def edit(self, request: Request) -> Response:
        response: Response = await super().edit(request)
        raise_failure(request)
        return response

    @login_required
    async def delete(self, request: Request) -> Response:
        # Without `pks` sqladmin raises a bare ValueError: a 500.
        pks = request.query_params.get("pks")
        if not pks:
            raise HTTPException(400, "No rows to delete were chosen.")
        # All or nothing: every row's delete joins one transaction, rolled back unless
        # each chosen row was deleted (sqladmin reports a refusal and stops at that row).
        wanted = len(pks.split(","))
        limit = request.app.state.settings.page_size_max
        if wanted > limit:  # each row is checked with its own queries
            raise HTTPException(400, f"At most {limit} rows can be deleted at once.")
        try:
            async with WritePipeline.of(request.app).transaction():
                response: Response = await super().delete(request)
                raise_failure(request)
                if deleted_rows(request) != wanted:
                    raise _Incomplete(response)
        except _Incomplete as incomplete:
            return incomplete.response
        return response

    async def logout(self, request: Request) -> Response:
        if request.method == "POST":
            return await super().logout(request)
        if self.authentication_backend is None:  # pragma: no cover - always set here
            raise RuntimeError("the admin has no authentication backend")
        if not await self.authentication_backend.authenticate(request):
            return RedirectResponse(request.url_for("admin:login"), status_code=302)
        return await self.templates.TemplateResponse(request, LOGOUT_TEMPLATE)


class _Incomplete(Exception):
    """A bulk delete stopped before its last row: its transaction is rolled back."""

    def __init__(self, response: Response) -> None:
        self.response = response


def install_admin(app: FastAPI, apps: Apps) -> CrudkitAdmin:
    """Mount the admin on `app`, with a view for every resource that has `admin = True`."""
    admin = CrudkitAdmin(app, apps)
    views = []
    for resource in apps.resources:
        if not resource.admin:
            continue
        if resource.model is User:
            views.append(user_view(resource))
        elif resource.model is LogEntry:
            views.append(history_view(resource))
        else:
            views.append(view_for(resource))
    for view in identities(views).values():
        admin.add_resource_view(view)
    app.state.admin = admin
    return admin
