"""product list indexes

Revision ID: shop_0003
Revises: shop_0002
Create Date: 2026-12-04 17:45:00.000000
"""

from collections.abc import Sequence

from alembic import op

# Revision identifiers, used by Alembic.
revision: str = 'shop_0003'
down_revision: str | Sequence[str] | None = 'shop_0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_shop_product_created_at_id', 'shop_product', ['created_at', 'id'], unique=False)
    op.create_index('ix_shop_product_name_id', 'shop_product', ['name', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_shop_product_name_id', table_name='shop_product')
    op.drop_index('ix_shop_product_created_at_id', table_name='shop_product')
