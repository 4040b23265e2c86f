"""`python manage.py seed`: sample categories, tags and products for the demo.

Idempotent: categories, tags and products are matched by name, so running it
again adds nothing. Products need an owner: the first superuser if there is one,
else a `demo` user (created without a usable password).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import click
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crudkit.cli import Project, pass_project
from crudkit.contrib.auth.models import User
from shop.models import Category, Product, Tag

DEMO_USERNAME = "demo"

CATEGORIES = ["Books", "Electronics", "Kitchen", "Garden"]

TAGS = ["bestseller", "gift", "new"]

# name, category, price, description, tags
PRODUCTS = [
    (
        "Fluent Python",
        "Books",
        "49.90",
        "Clear, concise and effective programming.",
        ["bestseller"],
    ),
    ("The Art of PostgreSQL", "Books", "39.00", None, ["gift"]),
    ("Mechanical keyboard", "Electronics", "129.00", "Tenkeyless, brown switches.", ["new"]),
    ("USB-C charger 65 W", "Electronics", "34.50", None, []),
    ("Cast iron skillet", "Kitchen", "45.00", "Pre-seasoned, 26 cm.", ["bestseller", "gift"]),
    ("Pour-over coffee maker", "Kitchen", "27.90", None, ["gift"]),
    ("Pruning shears", "Garden", "19.99", "Bypass blades for live stems.", []),
    ("Watering can 10 l", "Garden", "15.00", None, ["new"]),
]


@click.command()
@pass_project
def seed(project: Project) -> None:
    """Load sample categories, tags and products (running it again adds nothing)."""
    asyncio.run(_seed(project))


async def _seed(project: Project) -> None:
    async with project.database() as db, db.session() as session:
        categories = {c.name: c for c in await session.scalars(select(Category))}
        new_categories = [Category(name=name) for name in CATEGORIES if name not in categories]
        session.add_all(new_categories)
        await session.flush()
        categories.update((category.name, category) for category in new_categories)

        tags = {t.name: t for t in await session.scalars(select(Tag))}
        new_tags = [Tag(name=name) for name in TAGS if name not in tags]
        session.add_all(new_tags)
        tags.update((tag.name, tag) for tag in new_tags)

        existing = set(await session.scalars(select(Product.name)))
        missing = [row for row in PRODUCTS if row[0] not in existing]
        if missing:
            owner = await _owner(session)
            session.add_all(
                Product(
                    name=name,
                    category_id=categories[category].id,
                    price=Decimal(price),
                    description=description,
                    owner_id=owner.id,
                    tags=[tags[tag] for tag in product_tags],
                )
                for name, category, price, description, product_tags in missing
            )
    if not new_categories and not new_tags and not missing:
        click.echo("Nothing to add: the sample data is already loaded.")
        return
    click.echo(
        f"Added {len(new_categories)} categories, {len(new_tags)} tags and {len(missing)} products."
    )


async def _owner(session: AsyncSession) -> User:
    """The first superuser, else the `demo` user (created if need be)."""
    query = select(User).order_by(User.id)
    superuser = (await session.scalars(query.where(User.is_superuser).limit(1))).first()
    if superuser is not None:
        click.echo(f"Products are owned by the superuser {superuser.username!r}.")
        return superuser
    demo = (await session.scalars(query.where(User.username == DEMO_USERNAME))).first()
    if demo is None:
        # No usable password: nobody logs in as `demo` until someone sets one.
        demo = User(username=DEMO_USERNAME, email="demo@example.com", hashed_password="")
        session.add(demo)
        await session.flush()
        click.echo(
            f"Created the user {DEMO_USERNAME!r} to own the products; it has no password "
            f"(set one with: manage.py changepassword {DEMO_USERNAME})."
        )
    else:
        click.echo(f"Products are owned by the user {DEMO_USERNAME!r}.")
    return demo
