"""`/docs` (Swagger UI) and `/redoc`, served with their scripts and styles from the package.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, and a Google font: without
internet access `/docs` is blank, and every visit tells the CDN. crudkit ships the
files (`crudkit/statics/docs`, with their licences) and serves them at
`{docs_url}/static/`; the pages are FastAPI's, given those URLs.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "statics" / "docs"
REDOC_URL = "/redoc"
OPENAPI_URL = "/openapi.json"
CONTENT_SECURITY_POLICY = (
    # The pages' own inline set-up, ReDoc's web worker, and images of the bundles' own
    # (`data:`): ReDoc's side menu shows a logo from its CDN, refused here.
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def install(app: FastAPI, docs_url: str) -> None:
    """Serve Swagger UI at `docs_url`, ReDoc at `/redoc`, and their assets, all local.

    The app is built with `openapi_url` set and FastAPI's `docs_url` and `redoc_url`
    off: these routes replace FastAPI's.
    """
    static = f"{docs_url.rstrip('/')}/static"
    oauth2_redirect = f"{docs_url.rstrip('/')}/oauth2-redirect"
    app.swagger_ui_oauth2_redirect_url = oauth2_redirect
    # Swagger UI would otherwise send the schema to validator.swagger.io for a badge.
    parameters = {**(app.swagger_ui_parameters or {}), "validatorUrl": None}

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return _local_only(
            get_swagger_ui_html(
                openapi_url=root + OPENAPI_URL,
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{static}/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{static}/swagger-ui/swagger-ui.css",
                swagger_favicon_url=f"{root}{static}/swagger-ui/favicon-32x32.png",
                oauth2_redirect_url=root + oauth2_redirect,
                init_oauth=app.swagger_ui_init_oauth,
                swagger_ui_parameters=parameters,
            )
        )

    async def swagger_ui_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return _local_only(
            get_redoc_html(
                openapi_url=root + OPENAPI_URL,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{static}/redoc/redoc.standalone.js",
                redoc_favicon_url=f"{root}{static}/swagger-ui/favicon-32x32.png",
                with_google_fonts=False,
            )
        )

    app.add_route(docs_url, swagger_ui, include_in_schema=False)
    app.add_route(oauth2_redirect, swagger_ui_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
    app.mount(static, StaticFiles(directory=STATIC_DIR), name="docs-static")


def _local_only(page: HTMLResponse) -> HTMLResponse:
    """`page`, which the browser may let load nothing from another site."""
    page.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return page
