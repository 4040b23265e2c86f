"""The Alembic environment of every crudkit project.

Projects have no `alembic.ini` and no `env.py` of their own: `crudkit.migrator`
builds the Alembic `Config` in code, opens a connection on the project's async
engine and runs Alembic inside `AsyncConnection.run_sync`, handing this script
the connection in `config.attributes["crudkit"]` (Alembic's connection-sharing
recipe). This script only says how to compare models with the database and how
to render migration files. `migrate --sql` runs it offline: no connection, the
project's URL names the dialect, and the SQL goes to `options.output`.
"""

from __future__ import annotations

import warnings
from typing import Any

from alembic import context

from crudkit.db import Model
from crudkit.migrator import EnvOptions
from crudkit.migrator.autogenerate import render_item

options = context.config.attributes.get("crudkit")
if not isinstance(options, EnvOptions):
    raise RuntimeError("crudkit migrations run through `manage.py` commands, not `alembic`")

# Every installed app's models must be known, or autogenerate would see their
# tables as unknown; `include_object` then narrows the comparison to one app.
options.apps.populate()

common: dict[str, Any] = {
    "target_metadata": Model.metadata,
    # SQLite cannot alter most of a table in place; batch operations copy the table
    # there and are plain ALTERs elsewhere. Always rendered, so migrations made on
    # PostgreSQL also run on SQLite.
    "render_as_batch": True,
    # One transaction per migration, as Django: a failure keeps what was applied
    # before. DDL is transactional on PostgreSQL, and on SQLite through the
    # command engine (`crudkit.migrator.engines`), so a failed migration leaves nothing.
    "transaction_per_migration": True,
    "transactional_ddl": True,
}

if context.is_offline_mode():
    context.configure(
        url=options.url,
        literal_binds=True,
        output_buffer=options.output,
        **common,
    )
else:
    context.configure(
        connection=options.connection,
        compare_type=True,
        include_object=options.include_object,
        render_item=render_item,
        on_version_apply=options.on_version_apply,
        **common,
    )

with warnings.catch_warnings():
    # SQLite cannot reflect an index on an expression (`lower(username)`): its
    # autogenerate leaves such indexes out of the comparison (PostgreSQL compares
    # them), which SQLAlchemy and Alembic each announce on every run.
    warnings.filterwarnings("ignore", message=r".*expression-based index")
    with context.begin_transaction():
        context.run_migrations()
