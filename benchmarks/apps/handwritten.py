"""The baseline: `shop_product` served the way FastAPI's production guides teach.

FastAPI + SQLAlchemy 2.0 async ORM + Pydantic v2: an `AsyncSession` per request
through `Depends`, ORM models, `response_model` with `from_attributes`, and the
product's tags (many-to-many) loaded with `selectinload`, as crudkit answers them:
their keys. No auth: new rows belong to the owner named by `BENCH_OWNER_ID`.

    uvicorn --factory benchmarks.apps.handwritten:create_app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Column, DateTime, ForeignKey, Numeric, String, Table, Text, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

from benchmarks.config import POOL_SIZE


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Tag(Base):
    __tablename__ = "shop_tag"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


product_tags = Table(
    "shop_product_tags",
    Base.metadata,
    Column("product_id", ForeignKey("shop_product.id"), primary_key=True),
    Column("tag_id", ForeignKey("shop_tag.id"), primary_key=True),
)


class Product(Base):
    __tablename__ = "shop_product"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    in_stock: Mapped[bool] = mapped_column(default=True)
    category_id: Mapped[int | None]
    owner_id: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    tags: Mapped[list[Tag]] = relationship(secondary=product_tags, order_by=Tag.id)


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200)
    description: str | None = None
    price: Decimal = Field(ge=0, max_digits=10, decimal_places=2)
    in_stock: bool = True
    category_id: int | None = None


class ProductUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    description: str | None = None
    price: Decimal | None = Field(default=None, ge=0, max_digits=10, decimal_places=2)
    in_stock: bool | None = None
    category_id: int | None = None


class ProductOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    price: Decimal
    in_stock: bool
    category_id: int | None
    owner_id: int
    created_at: datetime
    updated_at: datetime
    tags: list[int]

    @field_validator("tags", mode="before")
    @classmethod
    def tag_keys(cls, tags: list[Tag]) -> list[int]:
        return [tag.id for tag in tags]


class ProductPage(BaseModel):
    items: list[ProductOut]
    total: int


Ordering = Literal["price", "-price", "name", "-name", "created_at", "-created_at"]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
router = APIRouter()


@router.get("/products/{product_id}", response_model=ProductOut)
async def read_product(product_id: int, session: SessionDep) -> Product:
    product = await session.get(Product, product_id, options=[selectinload(Product.tags)])
    if product is None:
        raise HTTPException(status_code=404, detail="Not found.")
    return product


@router.get("/products", response_model=ProductPage)
async def list_products(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    price__gte: Decimal | None = None,
    ordering: Ordering | None = None,
) -> dict[str, object]:
    stmt = select(Product)
    if price__gte is not None:
        stmt = stmt.where(Product.price >= price__gte)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    if ordering is not None:
        column = getattr(Product, ordering.lstrip("-"))
        stmt = stmt.order_by(column.desc() if ordering.startswith("-") else column.asc())
    stmt = stmt.order_by(Product.id).offset(offset).limit(limit).options(selectinload(Product.tags))
    products = (await session.scalars(stmt)).all()
    return {"items": products, "total": total}


@router.post("/products", response_model=ProductOut, status_code=201)
async def create_product(request: Request, body: ProductCreate, session: SessionDep) -> Product:
    product = Product(**body.model_dump(), owner_id=request.app.state.owner_id, tags=[])
    session.add(product)
    await session.commit()
    return product


@router.patch("/products/{product_id}", response_model=ProductOut)
async def update_product(product_id: int, body: ProductUpdate, session: SessionDep) -> Product:
    product = await session.get(Product, product_id, options=[selectinload(Product.tags)])
    if product is None:
        raise HTTPException(status_code=404, detail="Not found.")
    for key, value in body.model_dump(exclude_unset=True).items():
        setattr(product, key, value)
    await session.commit()
    return product


def create_app(database_url: str | None = None, owner_id: int | None = None) -> FastAPI:
    """The app; settings default to `BENCH_DATABASE_URL` and `BENCH_OWNER_ID`."""
    url = database_url or os.environ["BENCH_DATABASE_URL"]
    engine = create_async_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_SIZE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(title="hand-written shop", lifespan=lifespan)
    app.state.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    app.state.owner_id = owner_id if owner_id is not None else int(os.environ["BENCH_OWNER_ID"])
    app.include_router(router)
    return app
