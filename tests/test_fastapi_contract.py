"""Generated endpoints keep FastAPI's contract: dependencies (the app's and the
resource's) run and can refuse, `app.dependency_overrides` apply (of `get_user`
too), and routes the project adds are never shadowed by generated ones."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

import crudkit
from crudkit.contrib.auth.testing import auth_headers, create_user
from crudkit.routers import ResourceRoute
from crudkit.testing import client_for
from shop.models import Category, Product
from tests.conftest import Caller

PRODUCTS = "/api/v1/products"
TENANT = {"X-Tenant": "acme"}

calls: list[str] = []
callers: list[str] = []


async def require_tenant(x_tenant: Annotated[str | None, Header()] = None) -> str:
    """The resource's dependency: a tenant header, and a known tenant."""
    calls.append("resource")
    if x_tenant is None:
        raise HTTPException(400, "The X-Tenant header is required.")
    if x_tenant != "acme":
        raise crudkit.PermissionDenied("Unknown tenant.")
    return x_tenant


async def audit(
    request: Request, user: crudkit.CurrentUser, frozen: Annotated[bool, Query()] = False
) -> None:
    """The app's dependency: runs on every route, reads the caller and a query parameter."""
    calls.append(f"app {request.method}")
    callers.append(user.username)
    if frozen:
        raise crudkit.PermissionDenied("The shop is frozen.")


async def tracked(request: Request) -> AsyncIterator[None]:
    """A yield dependency: its exit runs once the endpoint is done, error or not."""
    calls.append("enter")
    try:
        yield
    finally:
        calls.append("exit")


class TenantProducts(crudkit.Resource):
    owner_field = "owner_id"
    public_read = True
    dependencies = [Depends(require_tenant), Depends(tracked)]


@pytest.fixture(autouse=True)
def _clear_calls() -> Iterator[None]:
    calls.clear()
    callers.clear()
    yield
    calls.clear()
    callers.clear()


@pytest.fixture
async def tenant_app(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    """Products served with the resource's and the app's dependencies."""
    registry = crudkit.Registry()
    registry.register(Product, TenantProducts)
    app = crudkit.create_app(settings, registry=registry, dependencies=[Depends(audit)])
    yield app
    await app.state.db.dispose()


@pytest.fixture
async def tenant_client(tenant_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(tenant_app) as client:
        yield client


async def owner_headers(app: FastAPI, username: str = "alice") -> dict[str, str]:
    return await auth_headers(app, await create_user(app, username))


async def test_app_and_resource_dependencies_run_on_every_endpoint(
    tenant_app: FastAPI, tenant_client: httpx.AsyncClient
) -> None:
    headers = {**await owner_headers(tenant_app), **TENANT}
    calls.clear()
    client = tenant_client
    created = await client.post(PRODUCTS, json={"name": "Lamp", "price": "2"}, headers=headers)
    assert created.status_code == 201, created.text
    item = f"{PRODUCTS}/{created.json()['id']}"
    responses = [
        await client.get(PRODUCTS, headers=headers),
        await client.get(item, headers=headers),
        await client.patch(item, json={"price": "3"}, headers=headers),
        await client.delete(item, headers=headers),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 204]
    methods = ["POST", "GET", "GET", "PATCH", "DELETE"]
    # The app's dependencies first, then the resource's, as FastAPI orders them.
    assert calls == [
        step for method in methods for step in (f"app {method}", "resource", "enter", "exit")
    ]
    # The dependency and the endpoint saw the same caller: the owner of the product.
    assert callers == ["alice"] * 5
    assert created.json()["owner_id"] == responses[1].json()["owner_id"]


async def test_dependencies_refuse_before_the_endpoint_runs(
    tenant_app: FastAPI, tenant_client: httpx.AsyncClient
) -> None:
    owner = await owner_headers(tenant_app)
    client = tenant_client
    refused = await client.post(PRODUCTS, json={"name": "Lamp", "price": "2"}, headers=owner)
    assert refused.status_code == 400
    created = await client.post(
        PRODUCTS, json={"name": "Lamp", "price": "2"}, headers={**owner, **TENANT}
    )
    item = f"{PRODUCTS}/{created.json()['id']}"
    for method, path in [("GET", PRODUCTS), ("GET", item), ("PATCH", item), ("DELETE", item)]:
        body = {"json": {"price": "9"}} if method == "PATCH" else {}
        missing = await client.request(method, path, headers=owner, **body)
        assert missing.status_code == 400, (method, path)
        assert missing.json() == {"detail": "The X-Tenant header is required."}
        stranger = await client.request(method, path, headers={**owner, "X-Tenant": "x"}, **body)
        assert stranger.status_code == 403
        frozen = await client.request(
            method, path, params={"frozen": "true"}, headers={**owner, **TENANT}, **body
        )
        assert frozen.json() == {"detail": "The shop is frozen."}
        assert frozen.status_code == 403
    # Nothing was changed by the refused requests; a dependency's query parameter is
    # accepted by the endpoint, and validated as FastAPI validates it.
    row = await client.get(item, params={"frozen": "false"}, headers=TENANT)
    assert row.status_code == 200
    assert row.json()["price"] == "2.00"
    invalid = await client.get(item, params={"frozen": "maybe"}, headers=TENANT)
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["query", "frozen"]
    # A refusal after the yield dependency was entered still runs its exit.
    assert calls.count("enter") == calls.count("exit") > 0


async def test_yield_dependency_exit_runs_after_the_endpoint_and_on_errors(
    tenant_client: httpx.AsyncClient,
) -> None:
    missing = await tenant_client.get(f"{PRODUCTS}/999999", headers=TENANT)
    assert missing.status_code == 404
    assert calls == ["app GET", "resource", "enter", "exit"]


async def test_dependency_overrides_replace_them(
    tenant_app: FastAPI, tenant_client: httpx.AsyncClient
) -> None:
    async def any_tenant() -> str:
        calls.append("override")
        return "test"

    async def no_audit() -> None:
        calls.append("no audit")

    tenant_app.dependency_overrides[require_tenant] = any_tenant
    tenant_app.dependency_overrides[audit] = no_audit
    listed = await tenant_client.get(PRODUCTS, params={"limit": 5})
    assert listed.status_code == 200, listed.text
    assert calls == ["no audit", "override", "enter", "exit"]
    tenant_app.dependency_overrides.clear()
    assert (await tenant_client.get(PRODUCTS)).status_code == 400


@dataclass(frozen=True)
class FakeUser:
    """A caller given by an override of `get_user`, as a test would."""

    id: int | None
    username: str = "root"
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = True
    is_superuser: bool = True

    def has_perm(self, codename: str) -> bool:
        return self.is_superuser


@pytest.fixture
def override(app: FastAPI) -> Iterator[Callable[[Callable[..., Any]], None]]:
    """Override `crudkit.get_user` on the shared app, undone after the test."""

    def set_override(dependency: Callable[..., Any]) -> None:
        app.dependency_overrides[crudkit.get_user] = dependency

    yield set_override
    app.dependency_overrides.clear()


async def test_overriding_get_user_gives_generated_endpoints_their_caller(
    app: FastAPI,
    client: httpx.AsyncClient,
    superuser: Caller,
    override: Callable[[Callable[..., Any]], None],
) -> None:
    anonymous = await client.post("/api/v1/categories", json={"name": "Lamps"})
    assert anonymous.status_code == 401
    override(lambda: FakeUser(id=superuser.id))
    created = await client.post("/api/v1/categories", json={"name": "Lamps"})
    assert created.status_code == 201, created.text
    product = await client.post(PRODUCTS, json={"name": "Lamp", "price": "1"})
    assert product.status_code == 201
    assert product.json()["owner_id"] == superuser.id
    # An override wins over the token the request carries, as on any route.
    override(lambda: crudkit.AnonymousUser())
    refused = await client.post(
        "/api/v1/categories", json={"name": "Desks"}, headers=superuser.headers
    )
    assert refused.status_code == 401
    item = f"{PRODUCTS}/{product.json()['id']}"
    assert (await client.delete(item, headers=superuser.headers)).status_code == 401
    assert (await client.get(item)).status_code == 200  # public read


async def test_get_user_override_may_depend_on_the_request(
    app: FastAPI,
    client: httpx.AsyncClient,
    alice: Caller,
    override: Callable[[Callable[..., Any]], None],
) -> None:
    async def from_header(x_user: Annotated[int | None, Header()] = None) -> Any:
        return crudkit.AnonymousUser() if x_user is None else FakeUser(id=x_user)

    override(from_header)
    body = {"name": "Lamp", "price": "1"}
    assert (await client.post(PRODUCTS, json=body)).status_code == 401
    created = await client.post(PRODUCTS, json=body, headers={"X-User": str(alice.id)})
    assert created.status_code == 201
    assert created.json()["owner_id"] == alice.id


def test_routes_without_dependencies_solve_nothing(app: FastAPI) -> None:
    generated = [route for route in app.router.routes if isinstance(route, ResourceRoute)]
    assert generated
    assert not any(route.solver.declared or route.solver.needed() for route in generated)


def test_openapi_shows_the_dependencies_parameters(tenant_app: FastAPI) -> None:
    paths = tenant_app.openapi()["paths"]
    for path, methods in [
        (PRODUCTS, ["get", "post"]),
        (PRODUCTS + "/{id}", ["get", "patch", "delete"]),
    ]:
        for method in methods:
            parameters = paths[path][method]["parameters"]
            located = [(p["in"], p["name"]) for p in parameters]
            assert ("header", "x-tenant") in located, (path, method)
            assert ("query", "frozen") in located
            assert len(located) == len(set(located)), located  # none listed twice
            security = paths[path][method]["security"]
            assert security == [{"OAuth2PasswordBearer": []}]  # from `audit`, once
            if path.endswith("{id}"):
                assert ("path", "id") in located
    listed = [p["name"] for p in paths[PRODUCTS]["get"]["parameters"]]
    assert {"limit", "offset", "cursor", "ordering"} <= set(listed)  # hand-written


def test_resource_dependencies_are_checked_at_registration() -> None:
    class Plain(crudkit.Resource):
        dependencies = [require_tenant]  # type: ignore[list-item]

    with pytest.raises(crudkit.ImproperlyConfigured, match=r"Plain\.dependencies"):
        crudkit.Registry().register(Category, Plain)


def test_a_dependency_reading_the_body_is_refused_at_start(settings: crudkit.Settings) -> None:
    async def reads_body(payload: dict[str, Any]) -> None: ...

    class Bodied(crudkit.Resource):
        dependencies = [Depends(reads_body)]

    registry = crudkit.Registry()
    registry.register(Category, Bodied)
    with pytest.raises(crudkit.ImproperlyConfigured, match="reads the request body"):
        crudkit.create_app(settings, registry=registry)


# Routes the project adds.


def asgi_text(text: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse(f"{text} {scope['path']}")(scope, receive, send)

    return app


@pytest.fixture
async def fresh_app(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    app = crudkit.create_app(settings)
    yield app
    await app.state.db.dispose()


async def test_routes_added_after_create_app_are_served(
    fresh_app: FastAPI, superuser: Caller
) -> None:
    app = fresh_app

    @app.get("/api/v1/products/export")
    async def export() -> dict[str, str]:
        return {"export": "csv"}

    @app.post("/api/v1/products/import")
    async def import_() -> dict[str, str]:
        return {"import": "done"}

    router = APIRouter()

    @router.get("/products/summary")
    async def summary() -> dict[str, int]:
        return {"products": 0}

    app.include_router(router, prefix="/api/v1")

    @router.get("/products/{id}/history")  # added to the router once included
    async def history(id: int) -> dict[str, int]:
        return {"history": id}

    app.mount("/api/v1/products/files", asgi_text("file"))

    headers = await auth_headers(app, superuser.id)
    async with client_for(app) as client:
        assert (await client.get(f"{PRODUCTS}/export")).json() == {"export": "csv"}
        assert (await client.post(f"{PRODUCTS}/import")).json() == {"import": "done"}
        assert (await client.get(f"{PRODUCTS}/summary")).json() == {"products": 0}
        assert (await client.get(f"{PRODUCTS}/7/history")).json() == {"history": 7}
        served = await client.get(f"{PRODUCTS}/files/a.txt")
        assert served.text == "file /api/v1/products/files/a.txt"
        # Only the method differs: the project's route answers 405, naming its method.
        wrong = await client.get(f"{PRODUCTS}/import")
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "POST"
        collection = await client.put(PRODUCTS)
        assert collection.status_code == 405
        assert set(collection.headers["allow"].split(", ")) == {"GET", "POST"}
        app.mount("/", asgi_text("site"))  # a site's fallback: after generated routes
        assert (await client.get("/about")).text == "site /about"
        # Generated routes answer as before for every other path.
        created = await client.post(PRODUCTS, json={"name": "Lamp", "price": "1"}, headers=headers)
        assert created.status_code == 201
        item = f"{PRODUCTS}/{created.json()['id']}"
        assert (await client.get(item)).json()["name"] == "Lamp"
        assert (await client.get(PRODUCTS)).json()["total"] == 1
        assert (await client.get(f"{PRODUCTS}/999999")).status_code == 404
