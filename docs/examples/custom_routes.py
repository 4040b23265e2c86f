"""Routes of a project's own beside the generated ones, on the example shop.

A router an app contributes from `AppConfig.ready()` (served under `api_prefix`),
and a route added to the app once built. Each asks for the caller, checks what
they may do, reads within their scope and writes through the pipeline.
"""

from __future__ import annotations

import csv
import io

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import func, select

import crudkit
from crudkit.permissions import has_model_permission
from shop.models import Order, Product

router = APIRouter(tags=["reports"])


@router.get("/orders/export", response_class=PlainTextResponse)
async def export_orders(request: Request, user: crudkit.CurrentUser) -> str:
    """The orders the caller may see, as CSV."""
    if not user.is_authenticated:
        raise crudkit.NotAuthenticated()
    orders = request.app.state.apps.registry[Order]
    stmt = select(Order.id, Order.product_id, Order.quantity, Order.status).order_by(Order.id)
    # Their own orders, or every one with `shop.view_order`: the policy's filter, in SQL.
    stmt = orders.scoped(request, stmt)
    async with request.app.state.db.reader() as reader:
        rows = await reader.rows(stmt)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "product_id", "quantity", "status"])
    writer.writerows(rows)
    return out.getvalue()


@router.get("/reports/orders")
async def orders_by_status(request: Request, user: crudkit.CurrentUser) -> dict[str, int]:
    """How many orders there are in each status, for holders of `shop.view_order`."""
    if not user.is_authenticated:
        raise crudkit.NotAuthenticated()
    orders = request.app.state.apps.registry[Order]
    if not has_model_permission(request, orders, "view"):
        raise crudkit.PermissionDenied()
    stmt = select(Order.status, func.count()).group_by(Order.status).order_by(Order.status)
    async with request.app.state.db.reader() as reader:
        return dict(await reader.rows(stmt))


class ReportsConfig(crudkit.AppConfig):
    name = "docs.examples.custom_routes"
    label = "reports"
    models_module = None  # a module, not a package: no models, no resources
    resources_module = None

    def ready(self) -> None:
        self.apps.add_router(router)  # under api_prefix: /api/v1/orders/export


class CheckoutIn(BaseModel):
    product_id: int
    quantity: int = 1  # its range is the model's, checked by the pipeline


class CheckoutOut(BaseModel):
    order_id: int
    status: str


def add_checkout(app: FastAPI) -> None:
    """A route added to the built app: its path is whole, the API prefix included."""
    prefix = app.state.settings.api_prefix

    @app.post(f"{prefix}/checkout", status_code=201)
    async def checkout(
        request: Request, user: crudkit.CurrentUser, body: CheckoutIn
    ) -> CheckoutOut:
        """Order a product in stock."""
        stmt = select(Product.in_stock).where(Product.id == body.product_id)
        async with request.app.state.db.reader() as reader:
            in_stock = await reader.scalar(stmt)
        if in_stock is None:
            raise crudkit.NotFound()
        if not in_stock:
            raise crudkit.Conflict("This product is not in stock.")
        # The pipeline checks the caller and the values, and writes the history row.
        values = {"product_id": body.product_id, "quantity": body.quantity}
        order = await crudkit.create(Order, values, request=request)
        return CheckoutOut(order_id=order.id, status=order.status)
