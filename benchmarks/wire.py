"""A TCP proxy in front of PostgreSQL that records every round trip a client makes.

A round trip ends with a Sync (extended protocol) or is one simple Query. What
the proxy records for each is the SQL it ran: the text of a simple query, or the
statement a Bind named (prepared earlier by a Parse on the same connection). A
Parse without a Bind is a prepare-only round trip and is recorded as such.
Pings (`;`), BEGIN/COMMIT/ROLLBACK and driver queries are all visible, which
SQLAlchemy's `before_cursor_execute` event does not show.

    async with WireLog.serving(upstream_host, upstream_port) as log:
        ... point the client at log.port ...
        log.clear(); await client_request(); print(log.trips)
"""

from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


@dataclass
class _Connection:
    """What one client connection prepared and has sent since its last Sync."""

    statements: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)


@dataclass
class WireLog:
    """Round trips seen by the proxy, in order, as short SQL labels."""

    port: int = 0
    trips: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.trips.clear()

    @classmethod
    @asynccontextmanager
    async def serving(cls, host: str, port: int) -> AsyncIterator[WireLog]:
        log = cls()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
            pump = asyncio.create_task(_copy(upstream_reader, writer))
            try:
                await log._client_to_server(reader, upstream_writer)
            finally:
                upstream_writer.close()
                await pump

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        log.port = server.sockets[0].getsockname()[1]
        try:
            yield log
        finally:
            server.close()

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        state = _Connection()
        try:
            while True:  # startup packets: no type byte; SSL/GSS requests precede the real one
                length = struct.unpack("!i", await reader.readexactly(4))[0]
                payload = await reader.readexactly(length - 4)
                writer.write(struct.pack("!i", length) + payload)
                if struct.unpack("!i", payload[:4])[0] not in (SSL_REQUEST, GSSENC_REQUEST):
                    break
            while True:
                kind = await reader.readexactly(1)
                length = struct.unpack("!i", await reader.readexactly(4))[0]
                payload = await reader.readexactly(length - 4)
                self._observe(state, kind, payload)
                writer.write(kind + struct.pack("!i", length) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    def _observe(self, state: _Connection, kind: bytes, payload: bytes) -> None:
        if kind == b"Q":
            self.trips.append(_label(payload.split(b"\0", 1)[0].decode()))
        elif kind == b"P":
            name, sql, _ = payload.split(b"\0", 2)
            state.statements[name.decode()] = sql.decode()
            state.pending.append("prepare: " + _label(sql.decode()))
        elif kind == b"B":
            _portal, statement, _ = payload.split(b"\0", 2)
            query = state.statements.get(statement.decode(), "?")
            state.pending = [p for p in state.pending if p != "prepare: " + _label(query)]
            state.pending.append(_label(query))
        elif kind == b"S":
            self.trips.append(" + ".join(state.pending) or "sync")
            state.pending.clear()


def _label(sql: str) -> str:
    """The statement, shortened to its verb and the tables it names."""
    text = sql.strip()
    if text in ("", ";"):
        return "ping ;"
    verb = text.split(None, 1)[0].upper()
    if verb == "SELECT" and re.match(r"SELECT\s+count\(", text, re.IGNORECASE):
        verb = "SELECT count(*)"
    tables = dict.fromkeys(_TABLES.findall(text))
    return " ".join([verb, *tables]) if tables else text[:40]


_TABLES = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE)\s+([A-Za-z_][\w.]*)", re.IGNORECASE)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
