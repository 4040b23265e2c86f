// Typed calls to the example project's API through the types openapi-typescript generates
// from its OpenAPI document (generated/api.ts, written by check.sh). `tsc --strict` checking
// this file is the test: a schema change that breaks these calls fails it.
import createClient from "openapi-fetch";

import type { components, paths } from "../generated/api.js";

type ProductCreate = components["schemas"]["ProductCreate"];
type ProductUpdate = components["schemas"]["ProductUpdate"];
type ProductOut = components["schemas"]["ProductOut"];
type ProductQuery = NonNullable<paths["/api/v1/products"]["get"]["parameters"]["query"]>;
type ProductPage =
  paths["/api/v1/products"]["get"]["responses"][200]["content"]["application/json"];

// A create body: name and price are required; price is a number or a decimal string.
const lamp: ProductCreate = { name: "Desk lamp", price: "19.90", tags: [1, 2] };

// A filter and an ordering; the API reads arrays comma-separated.
const cheapFirst: ProductQuery = { price__gte: "10", ordering: ["price"], limit: 20 };

// @ts-expect-error: price is required.
const noPrice: ProductCreate = { name: "No price" };
// @ts-expect-error: there is no such filter.
const badFilter: ProductQuery = { price__between: "1,2" };
// @ts-expect-error: ordering takes only the declared fields.
const badOrdering: ProductQuery = { ordering: ["owner_id"] };
// @ts-expect-error: a patch names only writable fields.
const badPatch: ProductUpdate = { created_at: "2024-01-01T00:00:00Z" };
void [noPrice, badFilter, badOrdering, badPatch];

export async function roundTrip(baseUrl: string, username: string, password: string) {
  const api = createClient<paths>({
    baseUrl,
    querySerializer: { array: { style: "form", explode: false } },
  });

  // The token endpoint takes a form body.
  const login = await api.POST("/api/v1/auth/token", {
    body: { username, password },
    bodySerializer: (body) => new URLSearchParams({ username: body.username, password: body.password }),
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
  });
  if (!login.data) throw new Error(`token: ${login.response.status}`);
  const auth = { Authorization: `Bearer ${login.data.access_token}` };

  const created = await api.POST("/api/v1/products", { body: lamp, headers: auth });
  if (!created.data) throw new Error(`create: ${created.response.status}`);
  const product: ProductOut = created.data;

  // Every page of a filtered list, following next_cursor (it carries the filter and ordering).
  const names: string[] = [];
  let page: ProductPage | undefined = (
    await api.GET("/api/v1/products", { params: { query: cheapFirst }, headers: auth })
  ).data;
  while (page) {
    for (const item of page.items) if (item.name !== undefined) names.push(item.name);
    if (page.next_cursor === null) break;
    const query: ProductQuery = { cursor: page.next_cursor };
    page = (await api.GET("/api/v1/products", { params: { query }, headers: auth })).data;
  }

  // A conditional patch: the retrieve's ETag goes back as If-Match (412 if the row changed).
  const path = { id: product.id };
  const current = await api.GET("/api/v1/products/{id}", { params: { path }, headers: auth });
  const etag = current.response.headers.get("ETag");
  if (etag === null) throw new Error("retrieve: no ETag");
  const change: ProductUpdate = { price: 24.5, in_stock: false };
  const patched = await api.PATCH("/api/v1/products/{id}", {
    params: { path },
    body: change,
    headers: { ...auth, "If-Match": etag },
  });
  if (patched.response.status === 412) throw new Error("patch: the product changed meanwhile");
  const updated: ProductOut | undefined = patched.data;

  const deleted = await api.DELETE("/api/v1/products/{id}", { params: { path }, headers: auth });
  return { names, price: updated?.price, deleted: deleted.response.status === 204 };
}
