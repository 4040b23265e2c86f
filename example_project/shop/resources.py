"""How the shop is served: who may read and change what."""

from __future__ import annotations

import crudkit
from shop.models import Category, Order, Product


@crudkit.register(Category)
class CategoryResource(crudkit.Resource):
    public_read = True
    search_fields = ["name"]
    ordering_fields = ["name"]


@crudkit.register(Product)
class ProductResource(crudkit.Resource):
    owner_field = "owner_id"
    public_read = True
    search_fields = ["name"]
    filter_fields = ["price", "category_id", "in_stock"]
    ordering_fields = ["price", "name", "created_at"]
    read_only_fields = ["created_at", "updated_at"]


@crudkit.register(Order)
class OrderResource(crudkit.Resource):
    owner_field = "owner_id"
    filter_fields = ["product_id"]
    ordering_fields = ["created_at", "quantity"]
    read_only_fields = ["created_at"]
