"""What is measured: five operations on 10,000 rows, and deep pages on 1,000,000."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.config import DEEP_OFFSET, SMALL_ROWS

CREATE_BODY = (
    '{"name": "Bench {n}", "description": "made by wrk", "price": {price}, '
    '"in_stock": true, "category_id": 3}'
)
PATCH_BODY = '{"price": {price}}'


@dataclass(frozen=True)
class Scenario:
    """One request shape; `path` is relative to the app's prefix.

    `{id}` in the path is a random id in 1..`id_max`; `{cursor}` is filled by the
    runner. Reads run for anonymous callers and, on crudkit, with a bearer token
    too; writes need the token on crudkit.
    """

    name: str
    title: str
    method: str
    path: str
    body: str = ""
    id_max: int = 0
    apps: tuple[str, ...] = ("nearlimit", "handwritten", "crudkit")
    connections: int = 16

    @property
    def is_write(self) -> bool:
        return self.method != "GET"

    def clients(self, app: str) -> list[bool]:
        """Whether each client of `app` sends a token: crudkit reads run both ways."""
        if app not in self.apps:
            return []
        if app != "crudkit":
            return [False]
        return [True] if self.is_write else [False, True]


SMALL_SCENARIOS = [
    Scenario("retrieve", "retrieve one", "GET", "/products/{id}", id_max=SMALL_ROWS),
    Scenario("list", "list 50", "GET", "/products?limit=50"),
    Scenario(
        "list_filtered",
        "list 50, price__gte + ordering=-price",
        "GET",
        "/products?limit=50&price__gte=500&ordering=-price",
    ),
    Scenario("create", "create", "POST", "/products", body=CREATE_BODY),
    Scenario("patch", "patch", "PATCH", "/products/{id}", body=PATCH_BODY, id_max=SMALL_ROWS),
]

# Latency, not throughput: one connection, so a page's time is not queueing behind others.
LARGE_SCENARIOS = [
    Scenario("first_page", "first page (limit 50)", "GET", "/products?limit=50", connections=1),
    Scenario(
        "offset_page",
        f"page at offset {DEEP_OFFSET:,}",
        "GET",
        f"/products?limit=50&offset={DEEP_OFFSET}",
        connections=1,
    ),
    Scenario(
        "cursor_page",
        f"same page by cursor (depth {DEEP_OFFSET:,})",
        "GET",
        "/products?limit=50&cursor={cursor}",
        apps=("crudkit",),
        connections=1,
    ),
]
