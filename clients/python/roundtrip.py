"""A CRUD round trip through the client openapi-python-client generates from the example
project's OpenAPI document, against a running server: python roundtrip.py BASE_URL

The superuser's credentials come from CRUDKIT_SUPERUSER_USERNAME (default: admin) and
CRUDKIT_SUPERUSER_PASSWORD, as `manage.py createsuperuser --noinput` reads them. Every
step asserts its status code; the first failure ends the run with a traceback.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

from example_client import AuthenticatedClient, Client
from example_client.api.auth import token_api_v1_auth_token_post as token
from example_client.api.products import (
    products_create,
    products_delete,
    products_list,
    products_retrieve,
    products_update,
)
from example_client.models import (
    BodyTokenApiV1AuthTokenPost,
    PageProductOut,
    ProductCreate,
    ProductOut,
    ProductsListOrderingItem,
    ProductUpdate,
    TokenPair,
)
from example_client.types import UNSET, Response


def expect(response: Response[Any], status: int, step: str) -> None:
    assert response.status_code == status, (
        f"{step}: expected {status}, got {response.status_code}: {response.content!r}"
    )


def main(base_url: str) -> None:
    username = os.environ.get("CRUDKIT_SUPERUSER_USERNAME", "admin")
    password = os.environ["CRUDKIT_SUPERUSER_PASSWORD"]

    # The token endpoint takes an OAuth2 form body, not JSON.
    with Client(base_url=base_url, raise_on_unexpected_status=True) as anonymous:
        login = token.sync_detailed(
            client=anonymous,
            body=BodyTokenApiV1AuthTokenPost(username=username, password=password),
        )
    expect(login, 200, "token")
    assert isinstance(login.parsed, TokenPair), login.parsed
    access = login.parsed.access_token

    def client(headers: dict[str, str] | None = None) -> AuthenticatedClient:
        # A new client per header set: `with_headers` also changes the httpx client the
        # original holds, so an If-Match would stick to every later request.
        return AuthenticatedClient(
            base_url=base_url, token=access, headers=headers or {}, raise_on_unexpected_status=True
        )

    api = client()
    # A unique name prefix keeps the run apart from rows already in the database.
    prefix = f"roundtrip-{uuid.uuid4().hex[:8]}"
    ids: dict[str, int] = {}
    for name, price in (("cheap", "5.00"), ("mid", "20.00"), ("dear", "30.00")):
        created = products_create.sync_detailed(
            client=api, body=ProductCreate(name=f"{prefix}-{name}", price=price)
        )
        expect(created, 201, f"create {name}")
        assert isinstance(created.parsed, ProductOut), created.parsed
        assert created.parsed.price == price, created.parsed.price
        ids[name] = created.parsed.id

    # One row per page: the filter leaves two, so the first page has a next_cursor, and
    # following it (the cursor alone carries filter, search and ordering) gives the second.
    names: list[str] = []
    page = products_list.sync_detailed(
        client=api,
        search=prefix,
        price_gte="10",
        ordering=[ProductsListOrderingItem.PRICE],
        limit=1,
    )
    pages = 0
    while True:
        expect(page, 200, f"list page {pages + 1}")
        parsed = page.parsed
        assert isinstance(parsed, PageProductOut), parsed
        names += [item.name for item in parsed.items if isinstance(item, ProductOut)]
        pages += 1
        if not isinstance(parsed.next_cursor, str):
            break
        assert pages < 5, "next_cursor never ran out"
        # The generated signature defaults offset to the schema's 0 and sends it; the
        # server refuses a cursor together with any offset, so leave it out.
        page = products_list.sync_detailed(
            client=api, cursor=parsed.next_cursor, offset=UNSET, limit=1
        )
    assert names == [f"{prefix}-mid", f"{prefix}-dear"], names
    assert pages >= 2, pages

    # Conditional update: the ETag of a retrieve goes back as If-Match.
    product_id = ids["mid"]
    current = products_retrieve.sync_detailed(product_id, client=api)
    expect(current, 200, "retrieve")
    etag = current.headers["ETag"]
    patched = products_update.sync_detailed(
        product_id,
        client=client({"If-Match": etag}),
        body=ProductUpdate(price="25.00", in_stock=False),
    )
    expect(patched, 200, "patch with If-Match")
    assert isinstance(patched.parsed, ProductOut), patched.parsed
    assert (patched.parsed.price, patched.parsed.in_stock) == ("25.00", False), patched.parsed
    assert patched.headers["ETag"] != etag, "the ETag did not change"
    # The old ETag is stale now: the server refuses the write.
    stale = products_update.sync_detailed(
        product_id, client=client({"If-Match": etag}), body=ProductUpdate(price="1.00")
    )
    expect(stale, 412, "patch with a stale If-Match")

    for name, pk in ids.items():
        expect(products_delete.sync_detailed(pk, client=api), 204, f"delete {name}")
    expect(products_retrieve.sync_detailed(product_id, client=api), 404, "retrieve deleted")
    print(f"round trip ok: {len(ids)} created, {pages} pages, patched, deleted")


if __name__ == "__main__":
    main(sys.argv[1])
