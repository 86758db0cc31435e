import type { Hono } from "hono";
import { Routes, type StripeApi } from "./api.ts";
import { optArray, optBool, optString } from "./form.ts";
import { newId, nowSeconds } from "./ids.ts";
import { listOf, PAGINATION } from "./list.ts";
import type { Price, Product } from "./objects.ts";
import type { StripeStore } from "./store.ts";

/** Seeds the account's catalogue: the Pro product and its monthly price, `proPriceId`. */
export function seedCatalog(store: StripeStore, proPriceId: string): void {
  const created = nowSeconds();
  const product: Product = {
    id: newId("prod"),
    object: "product",
    active: true,
    created,
    default_price: proPriceId,
    description: "Higher daily message limit",
    images: [],
    livemode: false,
    marketing_features: [],
    metadata: {},
    name: "Pro",
    package_dimensions: null,
    shippable: null,
    statement_descriptor: null,
    tax_code: null,
    tax_details: null,
    type: "service",
    unit_label: null,
    updated: created,
    url: null,
  };
  store.proPrice = {
    id: proPriceId,
    object: "price",
    active: true,
    billing_scheme: "per_unit",
    created,
    currency: "usd",
    custom_unit_amount: null,
    livemode: false,
    lookup_key: "pro_monthly",
    metadata: {},
    nickname: "Pro monthly",
    product: product.id,
    recurring: {
      interval: "month",
      interval_count: 1,
      meter: null,
      trial_period_days: null,
      usage_type: "licensed",
    },
    tax_behavior: "unspecified",
    tiers_mode: null,
    transform_quantity: null,
    type: "recurring",
    unit_amount: 1000,
    unit_amount_decimal: "1000",
  };
  store.objects.set(product.id, product);
  store.objects.set(store.proPrice.id, store.proPrice);
}

/**
 * Another monthly plan on the account (a second product and its price), as an operator adds in
 * the Dashboard: what a portal plan switch or a checkout outside the app can sell.
 */
export function addPlan(store: StripeStore, nickname: string, unitAmount: number): Price {
  const created = nowSeconds();
  const product: Product = {
    ...structuredClone(store.find("product", String(store.proPrice.product)) as Product),
    id: newId("prod"),
    created,
    updated: created,
    name: nickname,
    description: null,
  };
  const price: Price = {
    ...structuredClone(store.proPrice),
    id: newId("price"),
    created,
    lookup_key: null,
    nickname,
    product: product.id,
    unit_amount: unitAmount,
    unit_amount_decimal: String(unitAmount),
  };
  product.default_price = price.id;
  store.objects.set(product.id, product);
  store.objects.set(price.id, price);
  return price;
}

export function productName(store: StripeStore, price: Price): string {
  const productId = typeof price.product === "string" ? price.product : price.product.id;
  return store.find("product", productId)?.name ?? productId;
}

/** `/v1/prices`: list and retrieve (one seeded recurring price, plus control-added plans). */
export function priceRoutes(api: StripeApi, store: StripeStore): Hono {
  const r = new Routes(api, "/v1/prices");
  r.get(
    "",
    [
      "active",
      "created",
      "currency",
      "expand",
      "lookup_keys",
      "product",
      "recurring",
      "type",
      ...PAGINATION,
    ],
    ({ params }) => {
      const active = optBool(params, "active");
      const product = optString(params, "product");
      const type = optString(params, "type");
      const currency = optString(params, "currency");
      const lookupKeys = optArray(params, "lookup_keys");
      const items = store
        .all("price")
        .filter(
          (p) =>
            (active === undefined || p.active === active) &&
            (product === undefined || p.product === product) &&
            (type === undefined || p.type === type) &&
            (currency === undefined || p.currency === currency) &&
            (lookupKeys === undefined || lookupKeys.includes(p.lookup_key ?? "")),
        );
      return listOf(items, params, "/v1/prices", "price");
    },
  );
  r.get("/:id", ["expand"], ({ path }) => store.get("price", path.id ?? ""));
  return r.app;
}

/** `/v1/products/:id`. */
export function productRoutes(api: StripeApi, store: StripeStore): Hono {
  const r = new Routes(api, "/v1/products");
  r.get("/:id", ["expand"], ({ path }) => store.get("product", path.id ?? ""));
  return r.app;
}
