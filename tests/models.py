"""Models used only by the tests: every column type, and the shapes `register` refuses."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship, validates

import crudkit


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Gadget(crudkit.Model):
    """One column of each kind the schema builder maps."""

    __tablename__ = "test_gadget"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20), unique=True)
    notes: Mapped[str | None] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer, default=0)
    small: Mapped[int | None] = mapped_column(SmallInteger)
    big: Mapped[int | None] = mapped_column(BigInteger)
    weight: Mapped[Decimal | None] = mapped_column(Numeric(6, 3))
    ratio: Mapped[float | None] = mapped_column(Float)
    rating: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(default=True)
    colour: Mapped[Colour] = mapped_column(default=Colour.RED)
    released: Mapped[date | None]
    alarm: Mapped[time | None]
    seen_at: Mapped[datetime | None]
    token: Mapped[uuid.UUID] = mapped_column(default=uuid.uuid4)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    secret: Mapped[str | None] = mapped_column(String(50))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("auth_user.id"))


class Note(crudkit.Model):
    """No owner, not public: reading needs the view permission."""

    __tablename__ = "test_note"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(100))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("auth_user.id"))


class Code(crudkit.Model):
    """A natural primary key, given on create."""

    __tablename__ = "test_code"

    code: Mapped[str] = mapped_column(String(10), primary_key=True)
    label: Mapped[str] = mapped_column(String(50))


class NoKey(crudkit.Model):
    """Mapped through a table with no primary key constraint."""

    __table__ = Table("test_nokey", crudkit.Model.metadata, Column("value", Integer))
    __mapper_args__ = {"primary_key": [__table__.c.value]}


class Pair(crudkit.Model):
    __tablename__ = "test_pair"

    left: Mapped[int] = mapped_column(primary_key=True)
    right: Mapped[int] = mapped_column(primary_key=True)


class OrderLine(crudkit.Model):
    __tablename__ = "test_order_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    quantity: Mapped[int]


class Shelf(crudkit.Model):
    """Public; its items are private to their owners."""

    __tablename__ = "test_shelf"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(50))
    items: Mapped[list[ShelfItem]] = relationship(back_populates="shelf", lazy="raise")


class ShelfItem(crudkit.Model):
    __tablename__ = "test_shelf_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    shelf_id: Mapped[int] = mapped_column(ForeignKey("test_shelf.id"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("auth_user.id"))
    shelf: Mapped[Shelf] = relationship(back_populates="items", lazy="raise")


class Label(crudkit.Model):
    """A model with a SQLAlchemy `@validates` method, for the write pipeline's tests."""

    __tablename__ = "test_label"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("auth_user.id"))

    @validates("name")
    def _check_name(self, key: str, value: str) -> str:
        if "forbidden" in value.lower():
            raise ValueError("Labels may not say 'forbidden'.")
        return value.strip()


def _slug(context: Any) -> str:
    """A default computed from the other values of the row being inserted."""
    return str(context.get_current_parameters()["label"]).lower().replace(" ", "-")


def _serial(context: Any) -> int:
    """A default that runs a query on the statement's own connection and transaction."""
    counted = select(func.count()).select_from(Stamp.__table__)
    return int(context.connection.scalar(counted)) + 1


def _edited(context: Any) -> str:
    """An `onupdate` that reads the values of the UPDATE and the connection's dialect."""
    label = context.get_current_parameters().get("label")
    return f"{context.connection.dialect.name}: {label}"


class Stamp(crudkit.Model):
    """Python-side defaults that take SQLAlchemy's execution context."""

    __tablename__ = "test_stamp"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(50))
    slug: Mapped[str] = mapped_column(String(60), default=_slug)
    serial: Mapped[int] = mapped_column(default=_serial)
    edited: Mapped[str | None] = mapped_column(String(80), onupdate=_edited)


class Attachment(crudkit.Model):
    """Binary content: base64 text in JSON and in the admin's form."""

    __tablename__ = "test_attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary)


class Reading(crudkit.Model):
    """A decimal column without a precision: only the database bounds its values."""

    __tablename__ = "test_reading"

    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[Decimal] = mapped_column(Numeric)


class Bottle(crudkit.Model):
    __tablename__ = "test_bottle"

    id: Mapped[int] = mapped_column(primary_key=True)
    crate_id: Mapped[int] = mapped_column(ForeignKey("test_crate.id"))


class Crate(crudkit.Model):
    """Read-only SQL expressions: a correlated count and a hybrid property."""

    __tablename__ = "test_crate"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    quantity: Mapped[int]
    bottle_count: Mapped[int] = column_property(
        select(func.count(Bottle.id))
        .where(Bottle.crate_id == id)
        .correlate_except(Bottle)
        .scalar_subquery()
    )

    @hybrid_property
    def total(self) -> Decimal:
        return self.price * self.quantity

    @hybrid_property
    def initial(self) -> str:
        """Python only: its getter cannot run on the class, so it is not served."""
        return self.name[:1].upper()


article_tags = Table(
    "test_article_tags",
    crudkit.Model.metadata,
    Column("article_id", ForeignKey("test_article.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("test_tag.id", ondelete="CASCADE"), primary_key=True),
)


class Tag(crudkit.Model):
    """The related side of a many-to-many relationship; `hidden` rows are not for everyone."""

    __tablename__ = "test_tag"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    hidden: Mapped[bool] = mapped_column(default=False)


class Article(crudkit.Model):
    """A many-to-many relationship through a plain link table."""

    __tablename__ = "test_article"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    tags: Mapped[list[Tag]] = relationship(Tag, secondary=article_tags, lazy="raise")

    @validates("title")
    def _check_title(self, key: str, value: str) -> str:
        """A validator with a bug for two titles: it raises neither ValueError nor
        AssertionError (tests/test_hook_failures.py)."""
        if value == "fail validates RuntimeError":
            raise RuntimeError("the title validator broke")
        if value == "fail validates KeyError":
            raise KeyError("title")
        return value
