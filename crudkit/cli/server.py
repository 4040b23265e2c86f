"""`runserver`: serve the project with uvicorn.

    python manage.py runserver --reload            # development
    python manage.py runserver --host 0.0.0.0 --workers 4

uvicorn builds the app with the factory `crudkit.app:create_app` in every worker
(and again after each reload), so the settings module travels in
`CRUDKIT_SETTINGS_MODULE` and each process loads the same project.

The app is built once in the command's own process before uvicorn starts: a project
whose app cannot be built (a missing driver, a resource that does not fit its model)
stops with that error, instead of workers that crash and are restarted in a loop.

SIGTERM stops a server gracefully: it stops accepting connections, lets the requests
in flight finish (up to setting `shutdown_timeout`), closes its pools and exits 0.

`X-Forwarded-For` and `X-Forwarded-Proto` are believed only from the addresses in
setting `forwarded_allow_ips`: uvicorn would otherwise believe them from
127.0.0.1, so anything on the same host could pick the client address that
login throttling counts by.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click

from crudkit.app import create_app
from crudkit.cli.project import Project, pass_project
from crudkit.hosts import host_patterns

APP_FACTORY = "crudkit.app:create_app"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port."
)
@click.option("--reload", is_flag=True, help="Restart when the project's code changes.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (not with --reload).",
)
@pass_project
def runserver(project: Project, host: str, port: int, reload: bool, workers: int | None) -> None:
    """Serve the project with uvicorn."""
    import uvicorn

    if reload and workers:
        raise click.UsageError("--reload and --workers cannot be combined")
    # Load here, once: a broken project fails with one line, not in every worker.
    settings = project.apps.settings
    host_patterns(settings)  # no allowed_hosts without debug: one line, before any worker
    # And build the app as each worker will: uvicorn's supervisor restarts a worker that
    # fails to start, forever, under "Started parent process"; its error stops us here.
    create_app(settings, apps=project.apps)
    if project.settings_module:
        os.environ["CRUDKIT_SETTINGS_MODULE"] = project.settings_module
    # uvicorn raises the SIGTERM it drained for again, for the handler it found: a stop
    # that was asked for exits 0 (as the `--workers` supervisor does), not "killed".
    signal.signal(signal.SIGTERM, _stopped)
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        reload=reload,
        reload_dirs=[str(_project_dir(project))] if reload else None,
        workers=workers,
        access_log=False,  # crudkit logs one structured line per request itself
        # On SIGTERM: stop accepting, let the requests in flight finish, then dispose of
        # the pools (the app's lifespan).
        timeout_graceful_shutdown=settings.shutdown_timeout,
        **proxy_options(settings.forwarded_allow_ips),
    )


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def proxy_options(forwarded_allow_ips: list[str]) -> dict[str, Any]:
    """uvicorn's options for trusting proxies: none unless some are listed."""
    if not forwarded_allow_ips:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": ",".join(forwarded_allow_ips)}


def _project_dir(project: Project) -> Path:
    """The directory of the settings module (what `--reload` watches), else the current one."""
    module = sys.modules.get(project.settings_module or "")
    file = getattr(module, "__file__", None)
    return Path(file).resolve().parent if file else Path.cwd()
