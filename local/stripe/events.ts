import type { Hono } from "hono";
import { Routes, type StripeApi } from "./api.ts";
import { optArray, optBool, optString } from "./form.ts";
import { listOf, PAGINATION } from "./list.ts";
import type { StripeStore } from "./store.ts";

/** `/v1/events`: list (type, types, delivery_success filters) and retrieve. */
export function eventRoutes(api: StripeApi, store: StripeStore): Hono {
  const r = new Routes(api, "/v1/events");
  r.get(
    "",
    ["created", "delivery_success", "expand", "type", "types", ...PAGINATION],
    ({ params }) => {
      const type = optString(params, "type");
      const types = optArray(params, "types");
      const deliverySuccess = optBool(params, "delivery_success");
      const typeMatches = (t: string) =>
        type === undefined ||
        t === type ||
        (type.endsWith(".*") && t.startsWith(type.slice(0, -1)));
      const items = store
        .all("event")
        .filter(
          (e) =>
            typeMatches(e.type) &&
            (types === undefined || types.includes(e.type)) &&
            (deliverySuccess === undefined || (e.pending_webhooks === 0) === deliverySuccess),
        );
      return listOf(items, params, "/v1/events", "event");
    },
  );
  r.get("/:id", ["expand"], ({ path }) => store.get("event", path.id ?? ""));
  return r.app;
}
