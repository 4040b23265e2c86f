"""The shop's models: categories, products with tags, and the orders placed for them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    Column,
    Enum,
    ForeignKey,
    Index,
    Numeric,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

import crudkit
from crudkit.contrib.auth.models import User


def utcnow() -> datetime:
    return datetime.now(UTC)


class Tag(crudkit.Model):
    __tablename__ = "shop_tag"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)

    def __str__(self) -> str:
        return self.name


product_tags = Table(
    "shop_product_tags",
    crudkit.Model.metadata,
    Column("product_id", ForeignKey("shop_product.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("shop_tag.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Product(crudkit.Model):
    __tablename__ = "shop_product"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_non_negative"),
        # Lists filter and order by price, name and creation time, with the primary key as
        # the final tiebreak: each order is one index scan, whatever the table's size.
        Index("ix_shop_product_price_id", "price", "id"),
        Index("ix_shop_product_name_id", "name", "id"),
        Index("ix_shop_product_created_at_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # `examples` show in the API's documentation (and its sample request bodies).
    name: Mapped[str] = mapped_column(String(200), info={"examples": ["Desk lamp"]})
    description: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2), info={"ge": 0, "examples": ["19.90"]})
    in_stock: Mapped[bool] = mapped_column(default=True)
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("shop_category.id", ondelete="SET NULL"), index=True
    )
    owner_id: Mapped[int] = mapped_column(ForeignKey("auth_user.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    category: Mapped[Category | None] = relationship(back_populates="products", lazy="raise")
    owner: Mapped[User] = relationship(lazy="raise")
    tags: Mapped[list[Tag]] = relationship(Tag, secondary=product_tags, lazy="raise")

    def __str__(self) -> str:
        return self.name


class Category(crudkit.Model):
    __tablename__ = "shop_category"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # Read-only: computed by the database in the same query as the category itself.
    product_count: Mapped[int] = column_property(
        select(func.count(Product.id))
        .where(Product.category_id == id)
        .correlate_except(Product)
        .scalar_subquery()
    )

    products: Mapped[list[Product]] = relationship(back_populates="category", lazy="raise")

    def __str__(self) -> str:
        return self.name


ORDER_STATUSES = ("pending", "paid", "cancelled")


class Order(crudkit.Model):
    __tablename__ = "shop_order"
    __table_args__ = (CheckConstraint("quantity BETWEEN 1 AND 1000", name="quantity_range"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("shop_product.id"), index=True)
    quantity: Mapped[int] = mapped_column(info={"ge": 1, "le": 1000})
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(
        Enum(*ORDER_STATUSES, name="order_status", native_enum=False, create_constraint=True),
        default="pending",
        server_default="pending",
    )
    owner_id: Mapped[int] = mapped_column(ForeignKey("auth_user.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    product: Mapped[Product] = relationship(lazy="raise")
    owner: Mapped[User] = relationship(lazy="raise")

    def __str__(self) -> str:
        return f"Order #{self.id}"
