"""The example project served by crudkit, as `manage.py runserver` serves it.

    CRUDKIT_SETTINGS_MODULE=settings uvicorn --factory benchmarks.apps.crudkit_app:create_app

Settings come from the environment (`benchmarks.config.crudkit_env`). With
`BENCH_CRUDKIT_PATCHES` set, the named prototypes of `benchmarks.patches` are
applied first, to measure a proposed change without editing crudkit.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

import crudkit
from benchmarks.patches import apply_patches


def create_app() -> FastAPI:
    apply_patches(os.environ.get("BENCH_CRUDKIT_PATCHES", ""))
    return crudkit.create_app()
