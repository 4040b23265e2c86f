"""How the shop is served: who may read and change what, and the shop's own rules."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Row, func, select
from starlette.requests import Request

import crudkit
from shop.models import Category, Order, Product, Tag


@crudkit.register(Category)
class CategoryResource(crudkit.Resource):
    public_read = True
    search_fields = ["name"]
    ordering_fields = ["name", "product_count"]


@crudkit.register(Tag)
class TagResource(crudkit.Resource):
    public_read = True
    search_fields = ["name"]
    ordering_fields = ["name"]


class ProductStats(BaseModel):
    count: int
    average_price: Decimal | None
    """None when there is no product to average."""


@crudkit.register(Product)
class ProductResource(crudkit.Resource):
    owner_field = "owner_id"
    public_read = True
    search_fields = ["name"]
    filter_fields = ["price", "category_id", "in_stock", "tags"]
    ordering_fields = ["price", "name", "created_at"]
    read_only_fields = ["created_at", "updated_at"]

    async def validate(
        self, request: Request, values: dict[str, Any], obj: Any = None
    ) -> dict[str, Any]:
        # Every channel (the API, the admin, scripts) writes through this rule.
        if "spam" in values.get("name", "").lower():
            raise crudkit.ValidationError({"name": "Product names may not contain 'spam'."})
        return values

    @crudkit.action(detail=False, methods=["GET"], permission="view")
    async def stats(self, request: Request) -> ProductStats:
        """How many products the caller can see, and their average price."""
        stmt = self.scoped(request, select(func.count(), func.avg(Product.price)))
        async with request.app.state.db.reader() as reader:
            count, average = (await reader.rows(stmt))[0]
        return ProductStats(
            count=count,
            average_price=None if average is None else round(Decimal(average), 2),
        )


@crudkit.register(Order)
class OrderResource(crudkit.Resource):
    owner_field = "owner_id"
    filter_fields = ["product_id", "status"]
    ordering_fields = ["created_at", "quantity"]
    read_only_fields = ["created_at"]

    async def validate(
        self, request: Request, values: dict[str, Any], obj: Any = None
    ) -> dict[str, Any]:
        reopened = values.get("status", "cancelled") != "cancelled"
        if obj is not None and obj.status == "cancelled" and reopened:
            raise crudkit.ValidationError({"status": "A cancelled order stays cancelled."})
        return values

    @crudkit.action(detail=True, methods=["POST"], permission="change", admin=True)
    async def cancel(self, request: Request, obj: Row[Any]) -> Order:
        """Cancel the order; an order already cancelled is a 409."""
        if obj.status == "cancelled":
            raise crudkit.Conflict("This order is already cancelled.")
        return await crudkit.update(Order, obj.id, {"status": "cancelled"}, request=request)  # type: ignore[return-value]
