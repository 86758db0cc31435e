import { invalidRequest, noSuchObject } from "./errors.ts";
import { optInt, optObject, optString, type Params } from "./form.ts";
import type { ListObject } from "./objects.ts";

/** The pagination parameters every list endpoint accepts. */
export const PAGINATION = ["limit", "starting_after", "ending_before"] as const;

/** `created`-style filters: an exact number or `{gt, gte, lt, lte}`. */
export function matchesRange(value: number, params: Params, name: string): boolean {
  const raw = params[name];
  if (raw === undefined) return true;
  if (typeof raw === "string") return value === optInt(params, name);
  const range = optObject(params, name) ?? {};
  const bound = (op: string) => optInt(range, op, `${name}[${op}]`);
  const [gt, gte, lt, lte] = [bound("gt"), bound("gte"), bound("lt"), bound("lte")];
  return (
    (gt === undefined || value > gt) &&
    (gte === undefined || value >= gte) &&
    (lt === undefined || value < lt) &&
    (lte === undefined || value <= lte)
  );
}

export function paginate<T extends { id: string }>(
  items: T[],
  params: Params,
  url: string,
  kind: string,
): ListObject<T> {
  const limit = optInt(params, "limit") ?? 10;
  if (limit < 1 || limit > 100) {
    throw invalidRequest(`Invalid limit: must be at least 1 and no more than 100 (got ${limit}).`, {
      param: "limit",
    });
  }
  const after = optString(params, "starting_after");
  const before = optString(params, "ending_before");
  let page: T[];
  let hasMore: boolean;
  if (before) {
    const idx = items.findIndex((i) => i.id === before);
    if (idx < 0) throw noSuchObject(kind, before, "ending_before", 400);
    page = items.slice(Math.max(0, idx - limit), idx);
    hasMore = idx - limit > 0;
  } else {
    let start = 0;
    if (after) {
      const idx = items.findIndex((i) => i.id === after);
      if (idx < 0) throw noSuchObject(kind, after, "starting_after", 400);
      start = idx + 1;
    }
    page = items.slice(start, start + limit);
    hasMore = start + limit < items.length;
  }
  return { object: "list", data: page, has_more: hasMore, url };
}

/** A list endpoint's answer: `created` filter, then a page of it. */
export function listOf<T extends { id: string; created: number }>(
  items: T[],
  params: Params,
  url: string,
  kind: string,
): ListObject<T> {
  return paginate(
    items.filter((i) => matchesRange(i.created, params, "created")),
    params,
    url,
    kind,
  );
}
