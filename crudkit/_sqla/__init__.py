"""The one execution seam: every use of SQLAlchemy's internals in crudkit lives here.

crudkit runs a request's statements through a `Reader` (a read) or a `Writer`
(one transaction), both with `rows()`, `first()`, `scalar()` and `.connection`.
Behind them stand two executors: the plain one (`AsyncConnection.execute`) and,
on asyncpg, the driver one, which runs compiled statements straight on the
driver and is what makes generated endpoints fast. Both give the same rows, the
same errors and the same engine events (`before_cursor_execute`,
`after_cursor_execute`, `handle_error`), and Python-side column defaults get a
real execution context on both.

    executor.py      the interface: Reader, Writer
    plain.py         the SQLAlchemy executor
    driver.py        the asyncpg executor
    compiled.py      statement shapes compiled once: bind and result processing, rows
    context.py       a statement run as SQLAlchemy runs it: execution context, events, errors
    connections.py   which executor serves a request, the connection it shares, execute()

The rest of crudkit imports only what this module exports (through `crudkit.db`).
The internals used here are checked by the suite on the SQLAlchemy versions
pyproject.toml allows (the newest 2.0.x and 2.1.x).
"""

from crudkit._sqla.connections import Connections, execute
from crudkit._sqla.executor import Reader, Writer

__all__ = ["Connections", "Reader", "Writer", "execute"]
