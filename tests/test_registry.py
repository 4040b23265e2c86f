"""`register()`: both forms, paths, and the declarations it refuses at start."""

from __future__ import annotations

import pytest

import crudkit
from crudkit.exceptions import ImproperlyConfigured
from crudkit.resources import pluralize, snake_case
from tests.models import Code, Gadget, NoKey, Note, OrderLine, Pair


def test_function_form_registers_defaults() -> None:
    registry = crudkit.Registry()
    registry.register(Note)
    resource = registry[Note]
    assert type(resource) is crudkit.Resource
    assert resource.path_segment == "/notes"
    assert resource.get_permission_codename("change") == "tests.change_note"


def test_decorator_form_registers_options() -> None:
    registry = crudkit.Registry()

    @registry.register(Note)
    class NoteResource(crudkit.Resource):
        search_fields = ["text"]
        path = "memos"

    assert isinstance(registry[Note], NoteResource)
    assert registry[Note].path_segment == "/memos"
    assert len(registry) == 1


def test_registering_twice_is_an_error() -> None:
    registry = crudkit.Registry()
    registry.register(Note)

    @registry.register(Gadget)
    class GadgetResource(crudkit.Resource):
        pass

    with pytest.raises(ImproperlyConfigured, match="Gadget is already registered"):
        registry.register(Gadget)


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("Product", "products"),
        ("Category", "categories"),
        ("OrderLine", "order_lines"),
        ("Box", "boxes"),
        ("Day", "days"),
        ("HTTPLog", "http_logs"),
        ("Address", "addresses"),
    ],
)
def test_default_paths(name: str, path: str) -> None:
    assert pluralize(snake_case(name)) == path


def test_order_line_path() -> None:
    registry = crudkit.Registry()
    registry.register(OrderLine)
    assert registry[OrderLine].path_segment == "/order_lines"


def test_model_without_primary_key_fails_at_register() -> None:
    with pytest.raises(ImproperlyConfigured, match="NoKey: the model has no primary key"):
        crudkit.Registry().register(NoKey)


def test_composite_primary_key_fails_at_register() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"Pair: composite primary keys \(left, right\)"):
        crudkit.Registry().register(Pair)


def test_not_a_model_fails_at_register() -> None:
    with pytest.raises(ImproperlyConfigured, match="not a mapped SQLAlchemy model"):
        crudkit.Registry().register(dict)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"owner_field": "owner"}, "owner_field names 'owner', which is not a column of Note"),
        ({"search_fields": ["author_id"]}, "'author_id' is not a string column"),
        ({"filter_fields": ["nope"]}, "filter_fields names 'nope'"),
        ({"ordering_fields": "text"}, "must be a list of field names"),
        (
            {"read_only_fields": ["text"], "write_only_fields": ["text"]},
            "both read-only and write-only",
        ),
        ({"permissions": [crudkit.IsAuthenticated]}, "permission instances"),
        ({"path": "/a/b"}, "one URL segment"),
        ({"count": "approximately"}, "count must be"),
    ],
)
def test_bad_options_fail_at_register_naming_the_resource(
    options: dict[str, object], message: str
) -> None:
    resource_class = type("NoteResource", (crudkit.Resource,), options)
    with pytest.raises(ImproperlyConfigured, match=message):
        crudkit.Registry().register(Note)(resource_class)


def test_two_models_on_one_path_fail() -> None:
    registry = crudkit.Registry()
    registry.register(Note)

    class GadgetResource(crudkit.Resource):
        path = "notes"

    with pytest.raises(ImproperlyConfigured, match="both be served at '/notes'"):
        registry.register(Gadget, GadgetResource)


def test_natural_key_is_writable_on_create_only() -> None:
    registry = crudkit.Registry()
    registry.register(Code)
    resource = registry[Code]
    assert set(resource.create_schema.model_fields) == {"code", "label"}
    assert set(resource.update_schema.model_fields) == {"label"}
