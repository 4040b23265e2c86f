"""Fixtures as JSON: Django's format, written and read as a stream.

A fixture is a JSON array with one object per row. `dumpdata` writes one object
per line, so a fixture is also easy to grep and diff::

    [
    {"model": "shop.category", "pk": 1, "fields": {"name": "Books"}},
    {"model": "shop.product", "pk": 1, "fields": {"name": "Lamp", "price": "9.99", ...}},
    {"model": "auth.auth_user_groups", "fields": {"user_id": 1, "group_id": 2}}
    ]

`model` is `<app label>.<model name in lower case>`, or `<app label>.<table>` for
a table without a model (a many-to-many link table); `pk` is the primary key of
a table that has a single-column one, the other columns are `fields`, named by
their column keys. Values are JSON: decimals, dates and times as strings
(ISO 8601), UUIDs as strings, bytes as base64, enums by member name.

`read_objects` parses any JSON array of objects (a hand-written, indented
fixture too) one object at a time, so neither writing nor reading holds more
than a row in memory.
"""

from __future__ import annotations

import base64
import enum
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NoReturn, TextIO

from sqlalchemy import JSON, Column, Enum, Table, TypeDecorator
from sqlalchemy.types import TypeEngine

from crudkit.apps import Apps
from crudkit.db import Model
from crudkit.exceptions import CrudkitError

CHUNK_SIZE = 64 * 1024
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# A JSON error this close to the end of the text read so far may only mean "read more".
_NEAR_END = 6


class FixtureError(CrudkitError):
    """A fixture cannot be read or loaded; the message names the object."""


Decoder = Callable[[Any], Any]


@dataclass
class FixtureTable:
    """One table as fixtures name it, with the codecs of its columns."""

    name: str
    """`shop.product`, or `auth.auth_user_groups` for a table without a model."""
    app_label: str
    table: Table
    pk: Column[Any] | None
    """The primary key column, when there is exactly one."""
    decoders: dict[str, Decoder] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keys = [column.key for column in self.table.columns]
        self.decoders = {column.key: _decoder(column) for column in self.table.columns}

    def encode(self, row: Sequence[Any]) -> dict[str, Any]:
        """The fixture object of a row of `select(self.table)`."""
        values = dict(zip(self.keys, row, strict=True))
        if self.pk is None:
            return {"model": self.name, "fields": values}
        pk = values.pop(self.pk.key)
        return {"model": self.name, "pk": pk, "fields": values}

    def decode(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The column values of a fixture object, converted for an INSERT."""
        fields = obj.get("fields", {})
        if not isinstance(fields, dict):
            raise ValueError('"fields" must be an object')
        values = dict(fields)
        if self.pk is not None and obj.get("pk") is not None:
            values[self.pk.key] = obj["pk"]
        if not values.keys() <= self.decoders.keys():
            unknown = ", ".join(sorted(values.keys() - self.decoders.keys()))
            raise ValueError(f"unknown field(s) {unknown} (columns: {', '.join(self.keys)})")
        decoded = {}
        for key, value in values.items():
            try:
                decoded[key] = None if value is None else self.decoders[key](value)
            except (ValueError, TypeError, KeyError, ArithmeticError):
                kind = _base_type(self.table.c[key]).__class__.__name__
                raise ValueError(f"field {key!r}: {value!r} is not a valid {kind}") from None
        return decoded


def fixture_tables(apps: Apps, owners: Mapping[str, str]) -> list[FixtureTable]:
    """Every table of the installed apps, parents before the tables referencing them.

    `owners` maps table names to app labels (`Migrations.owners`).
    """
    models = {
        mapper.local_table.name: mapper.class_
        for mapper in Model.registry.mappers
        if isinstance(mapper.local_table, Table)
    }
    found = []
    for table in Model.metadata.sorted_tables:
        label = owners.get(table.name)
        if label is None or label not in apps.configs:
            continue
        model = models.get(table.name)
        name = f"{label}.{model.__name__.lower() if model else table.name}"
        pk = list(table.primary_key.columns)
        found.append(FixtureTable(name, label, table, pk[0] if len(pk) == 1 else None))
    return found


# Values.


def encode_value(value: Any) -> Any:
    """`json.dumps(default=...)`: the JSON form of what a column returns."""
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, enum.Enum):
        return value.name
    raise TypeError(f"cannot write a {type(value).__name__} to a fixture")


def _decoder(column: Column[Any]) -> Decoder:
    """How a fixture value becomes what `column` accepts."""
    type_ = _base_type(column)
    if isinstance(type_, JSON):
        return _same
    if isinstance(type_, Enum) and type_.enum_class is not None:
        return _enum_decoder(type_.enum_class)
    try:
        python_type = type_.python_type
    except NotImplementedError:
        return _same
    for kind, decode in _DECODERS:  # datetime before date: it is a date too
        if issubclass(python_type, kind):
            return decode
    return _same


def _base_type(column: Column[Any]) -> TypeEngine[Any]:
    """The column's type, decorators unwrapped (UTCDateTime is a DateTime)."""
    type_ = column.type
    while isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    return type_


def _same(value: Any) -> Any:
    return value


def _enum_decoder(enum_class: type[enum.Enum]) -> Decoder:
    def decode(value: Any) -> enum.Enum:
        if isinstance(value, str) and value in enum_class.__members__:
            return enum_class[value]
        return enum_class(value)

    return decode


def _iso(parse: Callable[[str], Any]) -> Decoder:
    return lambda value: parse(value) if isinstance(value, str) else value


_DECODERS: list[tuple[type, Decoder]] = [
    (datetime, _iso(datetime.fromisoformat)),
    (date, _iso(date.fromisoformat)),
    (time, _iso(time.fromisoformat)),
    (Decimal, lambda value: Decimal(str(value))),
    (uuid.UUID, lambda value: uuid.UUID(str(value))),
    (timedelta, lambda value: timedelta(seconds=float(value))),
    (bytes, lambda value: base64.b64decode(value, validate=True)),
]


# Streams.


class FixtureWriter:
    """Writes a fixture object by object: a JSON array, one object per line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.count = 0
        # One encoder for every row: `json.dumps(default=...)` would build one per call.
        self.encoder = json.JSONEncoder(ensure_ascii=False, default=encode_value)

    def write(self, obj: dict[str, Any]) -> None:
        line = self.encoder.encode(obj)
        self.stream.write(("[\n" if not self.count else ",\n") + line)
        self.count += 1

    def close(self) -> None:
        self.stream.write("[\n]\n" if not self.count else "\n]\n")


def read_objects(chunks: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The objects of a JSON array, parsed as the text arrives in `chunks`."""
    return _ArrayReader(iter(chunks)).objects()


class _ArrayReader:
    """A JSON array of objects, one object at a time, holding about one object of text."""

    def __init__(self, chunks: Iterator[str]) -> None:
        self.chunks = chunks
        self.buffer = ""
        self.pos = 0
        self.line = 1  # line number of buffer[0]
        self.decoder = json.JSONDecoder()

    def objects(self) -> Iterator[dict[str, Any]]:
        self.expect("[", "a fixture is a JSON array of objects")
        if self.peek() == "]":
            self.pos += 1
        else:
            while True:
                if self.peek() != "{":
                    self.fail("expected an object")
                yield self.read_object()
                separator = self.peek()
                if not separator:
                    self.fail("the fixture ends before its closing ']' (a cut file?)")
                if separator not in ",]":
                    self.fail("expected ',' or ']' after an object")
                self.pos += 1
                if separator == "]":
                    break
        if self.peek():
            self.fail("unexpected data after the closing ']'")

    def read_object(self) -> dict[str, Any]:
        while True:
            try:
                obj, self.pos = self.decoder.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as exc:
                maybe_cut = (
                    exc.msg.startswith("Unterminated") or exc.pos >= len(self.buffer) - _NEAR_END
                )
                if not (maybe_cut and self.read_more(double=True)):
                    self.pos = exc.pos
                    self.fail(f"invalid JSON: {exc.msg}")
            else:
                return obj  # type: ignore[no-any-return]

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end)."""
        while True:
            self.pos = _WHITESPACE.match(self.buffer, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buffer) or not self.read_more():
                return self.buffer[self.pos : self.pos + 1]

    def expect(self, char: str, message: str) -> None:
        if self.peek() != char:
            self.fail(message)
        self.pos += 1

    def read_more(self, *, double: bool = False) -> bool:
        """Append the next chunk(s), dropping what was consumed; False at the end."""
        if self.pos:
            self.line += self.buffer.count("\n", 0, self.pos)
            self.buffer = self.buffer[self.pos :]
            self.pos = 0
        wanted = max(2 * len(self.buffer), 1) if double else 1
        read = False
        while len(self.buffer) < wanted or not read:
            chunk = next(self.chunks, None)
            if chunk is None:
                return read
            self.buffer += chunk
            read = True
        return True

    def fail(self, message: str) -> NoReturn:
        line = self.line + self.buffer.count("\n", 0, self.pos)
        raise FixtureError(f"{message} (line {line})")
