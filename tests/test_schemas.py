"""Create/Update/Out schemas generated from column types, lengths, nullability, defaults."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

import crudkit
from shop.models import Order, Product
from tests.models import Colour, Gadget


@pytest.fixture(scope="module")
def gadget() -> crudkit.Resource:
    registry = crudkit.Registry()

    @registry.register(Gadget)
    class GadgetResource(crudkit.Resource):
        owner_field = "owner_id"
        read_only_fields = ["rating"]
        write_only_fields = ["secret"]

    return registry[Gadget]


def schema_of(resource: crudkit.Resource, kind: str) -> dict[str, Any]:
    model = getattr(resource, f"{kind}_schema")
    mode = "serialization" if kind == "out" else "validation"
    schema: dict[str, Any] = model.model_json_schema(mode=mode)
    return schema


def test_create_fields(gadget: crudkit.Resource) -> None:
    fields = set(gadget.create_schema.model_fields)
    assert "id" not in fields  # primary key
    assert "owner_id" not in fields  # set from the caller
    assert "rating" not in fields  # read-only
    assert "token" not in fields  # computed default (uuid4)
    assert "secret" in fields  # write-only: accepted on write
    assert {"name", "count", "active", "colour", "extra", "weight"} <= fields


def test_out_fields(gadget: crudkit.Resource) -> None:
    fields = set(gadget.out_schema.model_fields)
    assert "secret" not in fields
    assert {"id", "owner_id", "rating", "token"} <= fields


def test_required_and_defaults(gadget: crudkit.Resource) -> None:
    schema = schema_of(gadget, "create")
    assert schema["required"] == ["name"]
    properties = schema["properties"]
    assert properties["count"]["default"] == 0
    assert properties["active"]["default"] is True
    assert properties["colour"]["default"] == "red"


def test_constraints_from_types(gadget: crudkit.Resource) -> None:
    create = gadget.create_schema
    create(name="x" * 20)
    with pytest.raises(ValidationError, match="at most 20 characters"):
        create(name="x" * 21)
    with pytest.raises(ValidationError):
        create(name="ok", small=40000)  # SmallInteger
    with pytest.raises(ValidationError):
        create(name="ok", count=2**31)  # Integer
    create(name="ok", big=2**62)
    with pytest.raises(ValidationError):
        create(name="ok", big=2**63)
    with pytest.raises(ValidationError):
        create(name="ok", weight=Decimal("1.2345"))  # Numeric(6, 3)
    with pytest.raises(ValidationError):
        create(name="ok", weight=Decimal("1234.5"))
    with pytest.raises(ValidationError):
        create(name="ok", ratio=float("inf"))
    with pytest.raises(ValidationError):
        create(name="ok", colour="blue")
    assert create(name="ok", colour="green").colour is Colour.GREEN


def test_unknown_keys_are_refused(gadget: crudkit.Resource) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        gadget.create_schema(name="ok", owner_id=1)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        gadget.update_schema(id=4)


def test_update_is_partial(gadget: crudkit.Resource) -> None:
    update = gadget.update_schema(count=3)
    assert update.model_dump(exclude_unset=True) == {"count": 3}
    with pytest.raises(ValidationError):
        gadget.update_schema(name=None)  # not nullable
    assert gadget.update_schema(notes=None).model_dump(exclude_unset=True) == {"notes": None}


def test_example_project_schemas() -> None:
    registry = crudkit.Registry()
    registry.register(Product)
    registry.register(Order)
    product = registry[Product].create_schema.model_json_schema()
    assert product["properties"]["name"]["maxLength"] == 200
    # Registered without options, so the owner is an ordinary required column here.
    assert product["required"] == ["name", "price", "owner_id"]
    price = registry[Product].create_schema(name="x", price="10.5", owner_id=1).price
    assert price == Decimal("10.5")
    order = registry[Order].create_schema
    with pytest.raises(ValidationError):
        order(product_id=1, quantity=0, owner_id=1)


def test_out_accepts_orm_objects(gadget: crudkit.Resource) -> None:
    obj = Gadget(id=1, name="g", count=0, active=True, colour=Colour.RED, token=uuid.uuid4())
    out = gadget.out_schema.model_validate(obj)
    assert out.name == "g"
