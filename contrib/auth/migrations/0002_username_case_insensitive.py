"""username case insensitive

Usernames become unique whatever their case: stored names are normalised as
the application now normalises new ones (NFKC, surrounding whitespace removed),
then a unique index on lower(username) is created. Names that would then be
the same (`Admin` and `admin`, `bob` and `bob `) stop the migration with a
list to rename first.

Revision ID: auth_0002
Revises: auth_0001
Create Date: 2026-12-04 11:31:35.383248
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from alembic.util import CommandError

# Revision identifiers, used by Alembic.
revision: str = 'auth_0002'
down_revision: str | Sequence[str] | None = 'auth_0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

users = sa.table('auth_user', sa.column('id', sa.Integer()), sa.column('username', sa.String()))


def _normalized(username: str) -> str:
    # The rule of this migration's time, written out so later changes leave it as it was.
    return unicodedata.normalize('NFKC', username).strip() or username


def _key(username: str) -> str:
    return unicodedata.normalize('NFKC', _normalized(username).casefold())


def _normalize_usernames() -> None:
    conn = op.get_bind()
    found: dict[str, list[str]] = {}
    renames: list[tuple[int, str]] = []
    for user_id, username in conn.execute(sa.select(users.c.id, users.c.username)):
        found.setdefault(_key(username), []).append(username)
        if _normalized(username) != username:
            renames.append((user_id, _normalized(username)))
    clashes = sorted(sorted(names) for names in found.values() if len(names) > 1)
    if clashes:
        listed = '; '.join(', '.join(repr(name) for name in names) for names in clashes[:20])
        raise CommandError(
            'usernames must now be unique whatever their case, width or surrounding '
            f'spaces; rename all but one of each of these, then migrate again: {listed}'
        )
    for user_id, username in renames:
        conn.execute(sa.update(users).where(users.c.id == user_id).values(username=username))


def upgrade() -> None:
    _normalize_usernames()
    with op.batch_alter_table('auth_user', schema=None) as batch_op:
        batch_op.create_index('uq_auth_user_username_lower', [sa.literal_column('lower(username)')], unique=True)


def downgrade() -> None:
    # Normalised usernames stay as they are: they were already the names users log in with.
    with op.batch_alter_table('auth_user', schema=None) as batch_op:
        batch_op.drop_index('uq_auth_user_username_lower')
