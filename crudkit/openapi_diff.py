"""Breaking changes between two OpenAPI documents: what a client written against the
old one may no longer rely on.

Breaking:

- a path, or an operation (method) of a path, removed;
- a parameter removed, or newly required (a new required one included);
- a field of a response removed (nested objects and list items too);
- a field of a request body newly required (a new required one included);
- an enum value removed, from a parameter or a field;
- a type changed: a parameter or request field that no longer accepts a type it
  did, a response field that may now hold a type it did not.

Adding paths, operations, optional parameters, response fields or enum values is not
breaking. `$ref`s are resolved within each document before schemas are compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_MAX_DEPTH = 8  # schemas may refer to themselves: compare that far, then stop


class Document:
    """An OpenAPI document, with its `$ref`s resolved on demand."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.paths: dict[str, Any] = document.get("paths") or {}

    def resolve(self, node: Any) -> Any:
        """`node` with its `$ref` followed (repeatedly), within the document."""
        seen: set[str] = set()
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if not ref.startswith("#/") or ref in seen:
                return {}
            seen.add(ref)
            target: Any = self.document
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, dict) else None
            node = target if target is not None else {}
        return node

    def operations(self, path: str) -> dict[str, dict[str, Any]]:
        item = self.resolve(self.paths.get(path) or {})
        return {m: self.resolve(op) for m, op in item.items() if m in METHODS}

    def parameters(self, path: str, method: str) -> dict[tuple[str, str], dict[str, Any]]:
        """(in, name) -> parameter: the path's, overridden by the operation's."""
        item = self.resolve(self.paths.get(path) or {})
        found = {}
        for source in (item, self.operations(path).get(method, {})):
            for raw in source.get("parameters") or ():
                parameter = self.resolve(raw)
                if isinstance(parameter, dict) and "name" in parameter:
                    found[(parameter.get("in", "query"), parameter["name"])] = parameter
        return found

    def body_schemas(self, operation: dict[str, Any]) -> dict[str, Any]:
        """Media type -> schema of the request body."""
        body = self.resolve(operation.get("requestBody") or {})
        return _schemas(self, body.get("content") or {})

    def response_schemas(self, operation: dict[str, Any]) -> dict[tuple[str, str], Any]:
        """(status, media type) -> schema of each documented response."""
        found = {}
        for status, response in (operation.get("responses") or {}).items():
            content = self.resolve(response).get("content") or {}
            for media, schema in _schemas(self, content).items():
                found[(str(status), media)] = schema
        return found

    def types(self, schema: Any, depth: int = 0) -> set[str]:
        """The JSON types a schema admits (branches of anyOf/oneOf together); empty: any."""
        schema = self.resolve(schema)
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return set()
        kind = schema.get("type")
        if isinstance(kind, str):
            return {kind}
        if isinstance(kind, list):
            return {str(k) for k in kind}
        found: set[str] = set()
        for key in ("anyOf", "oneOf"):
            for branch in schema.get(key) or ():
                branch_types = self.types(branch, depth + 1)
                if not branch_types:
                    return set()  # a branch admits anything
                found |= branch_types
        for branch in schema.get("allOf") or ():
            found |= self.types(branch, depth + 1)
        if not found and "properties" in schema:
            found.add("object")
        return found

    def enum(self, schema: Any, depth: int = 0) -> list[Any] | None:
        """The values a schema allows if it lists them (array items' for an array)."""
        schema = self.resolve(schema)
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return None
        if "enum" in schema:
            return list(schema["enum"])
        if "items" in schema:
            return self.enum(schema["items"], depth + 1)
        values: list[Any] = []
        for key in ("anyOf", "oneOf"):
            for branch in schema.get(key) or ():
                branch = self.resolve(branch)
                if branch.get("type") == "null":
                    continue
                listed = self.enum(branch, depth + 1)
                if listed is None:
                    return None
                values += listed
        return values or None

    def properties(self, schema: Any, depth: int = 0) -> tuple[dict[str, Any], set[str]]:
        """Fields of an object schema, and the required ones (union of its branches)."""
        schema = self.resolve(schema)
        fields: dict[str, Any] = {}
        required: set[str] = set()
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return fields, required
        for name, field in (schema.get("properties") or {}).items():
            fields.setdefault(name, field)
        required.update(schema.get("required") or ())
        for key in ("allOf", "anyOf", "oneOf"):
            for branch in schema.get(key) or ():
                more, more_required = self.properties(branch, depth + 1)
                for name, field in more.items():
                    fields.setdefault(name, field)
                if key == "allOf":
                    required |= more_required
        return fields, required


def _schemas(document: Document, content: dict[str, Any]) -> dict[str, Any]:
    return {
        media: entry["schema"]
        for media, raw in content.items()
        if isinstance(entry := document.resolve(raw), dict) and "schema" in entry
    }


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What breaks a client of `old` if the API now follows `new`, one line each."""
    return list(_Comparison(Document(old), Document(new)).run())


class _Comparison:
    def __init__(self, old: Document, new: Document) -> None:
        self.old = old
        self.new = new

    def run(self) -> Iterator[str]:
        for path in self.old.paths:
            if path not in self.new.paths:
                yield f"{path}: path removed"
                continue
            new_operations = self.new.operations(path)
            for method, operation in self.old.operations(path).items():
                where = f"{method.upper()} {path}"
                if method not in new_operations:
                    yield f"{where}: operation removed"
                    continue
                yield from self._parameters(where, path, method)
                yield from self._request(where, operation, new_operations[method])
                yield from self._responses(where, operation, new_operations[method])

    def _parameters(self, where: str, path: str, method: str) -> Iterator[str]:
        old = self.old.parameters(path, method)
        new = self.new.parameters(path, method)
        for key, parameter in old.items():
            label = f"parameter {key[1]!r} ({key[0]})"
            if key not in new:
                yield f"{where}: {label} removed"
                continue
            if new[key].get("required") and not parameter.get("required"):
                yield f"{where}: {label} is now required"
            yield from self._accepts(
                where, label, parameter.get("schema", {}), new[key].get("schema", {})
            )
        for key, parameter in new.items():
            if key not in old and parameter.get("required"):
                yield f"{where}: new required parameter {key[1]!r} ({key[0]})"

    def _accepts(self, where: str, label: str, old: Any, new: Any) -> Iterator[str]:
        """What a request may send: each type and enum value it could send still goes."""
        old_types, new_types = self.old.types(old), self.new.types(new)
        if old_types and new_types and not old_types <= new_types:
            yield f"{where}: {label} type changed from {_names(old_types)} to {_names(new_types)}"
        yield from self._enum(where, label, old, new)

    def _enum(self, where: str, label: str, old: Any, new: Any) -> Iterator[str]:
        old_values, new_values = self.old.enum(old), self.new.enum(new)
        if old_values is None or new_values is None:
            return
        for value in old_values:
            if value not in new_values:
                yield f"{where}: {label} enum value {value!r} removed"

    def _request(self, where: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[str]:
        new_bodies = self.new.body_schemas(new)
        for media, schema in self.old.body_schemas(old).items():
            if media in new_bodies:
                yield from self._request_fields(where, "", schema, new_bodies[media], 0)

    def _request_fields(
        self, where: str, prefix: str, old: Any, new: Any, depth: int
    ) -> Iterator[str]:
        if depth > _MAX_DEPTH:
            return
        old_fields, old_required = self.old.properties(old)
        new_fields, new_required = self.new.properties(new)
        for name in sorted(new_required - old_required):
            if name in new_fields or name in old_fields:
                state = "is now required" if name in old_fields else "new and required"
                yield f"{where}: request field {prefix + name!r} {state}"
        for name, field in old_fields.items():
            if name not in new_fields:
                continue  # no longer read: what clients send still goes (or is a 422)
            label = f"request field {prefix + name!r}"
            yield from self._accepts(where, label, field, new_fields[name])
            yield from self._request_fields(
                where, f"{prefix}{name}.", field, new_fields[name], depth + 1
            )

    def _responses(self, where: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[str]:
        new_responses = self.new.response_schemas(new)
        for (status, media), schema in self.old.response_schemas(old).items():
            if (status, media) in new_responses:
                target = new_responses[(status, media)]
                yield from self._response_fields(f"{where} {status}", "", schema, target, 0)

    def _response_fields(
        self, where: str, prefix: str, old: Any, new: Any, depth: int
    ) -> Iterator[str]:
        if depth > _MAX_DEPTH:
            return
        old_schema, new_schema = self.old.resolve(old), self.new.resolve(new)
        arrays = isinstance(old_schema, dict) and isinstance(new_schema, dict)
        if arrays and "items" in old_schema and "items" in new_schema:
            yield from self._response_fields(
                where,
                prefix.rstrip(".") + "[].",
                old_schema["items"],
                new_schema["items"],
                depth + 1,
            )
        old_fields, _ = self.old.properties(old_schema)
        new_fields, _ = self.new.properties(new_schema)
        for name, field in old_fields.items():
            label = f"response field {prefix + name!r}"
            if name not in new_fields:
                yield f"{where}: {label} removed"
                continue
            # What a response may hold: a client must know every type it may now get.
            old_types = self.old.types(field)
            new_types = self.new.types(new_fields[name])
            if old_types and new_types and not new_types <= old_types:
                changed = f"{_names(old_types)} to {_names(new_types)}"
                yield f"{where}: {label} type changed from {changed}"
            yield from self._enum(where, label, field, new_fields[name])
            yield from self._response_fields(
                where, f"{prefix}{name}.", field, new_fields[name], depth + 1
            )


def _names(types: set[str]) -> str:
    return "|".join(sorted(types))
