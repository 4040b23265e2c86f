from __future__ import annotations

import asyncio
import os
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

import crudkit
from crudkit.events import WriteEvent


async def stall(conn: AsyncConnection, event: WriteEvent) -> None:
    request_id = event.request_id or ""
    prefix, _, rest = request_id.partition("-")
    if prefix != "slow":
        return
    markers = os.environ.get("SLOW_WRITES_DIR")
    if markers:
        await asyncio.to_thread((Path(markers) / request_id).touch)
    await asyncio.sleep(float(rest.partition("-")[0]))


class SlowWritesConfig(crudkit.AppConfig):
    name = "tests.slow_writes"
    models_module = None
    resources_module = None

    def ready(self) -> None:
        super().ready()
        self.apps.on_write(stall)
