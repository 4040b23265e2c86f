"""The example app with a write hook that stalls a chosen write inside its transaction,
so a test can kill the worker mid-write. Served by tests/test_faults.py."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

import crudkit
from crudkit.events import WriteEvent


def create_app() -> FastAPI:
    settings = crudkit.Settings(
        database_url=os.environ["FAULT_DATABASE_URL"],
        secret_key=os.environ["FAULT_SECRET_KEY"],
        installed_apps=["crudkit.contrib.auth", "shop"],
        allowed_hosts=["127.0.0.1"],
        _env_file=None,  # type: ignore[call-arg]
    )
    apps = crudkit.Apps(settings).populate()
    marker = Path(os.environ["FAULT_MARKER"])

    async def stall(conn: AsyncConnection, event: WriteEvent) -> None:
        if event.request_id == "stall":
            await asyncio.to_thread(marker.write_text, "row inserted, transaction open")
            await asyncio.sleep(120)

    apps.on_write(stall)
    return crudkit.create_app(apps=apps)
