import { type Context, Hono } from "hono";
import { type createEngine, isSettled, type QStashMessage } from "./engine.ts";
import { view } from "./view.ts";

/** A switch that applies to messages whose URL or body contains `match` (null: every message). */
export interface MatchSwitch {
  match: string | null;
}

/** The test switches QStash's API reads as it publishes and delivers. */
export interface QStashSwitches {
  /** Which signing key signs deliveries (rotation tests). */
  signWith: "current" | "next";
  /** Pending one-shot duplicate deliveries. */
  duplicates: MatchSwitch[];
  /** Publishes refused with a 500 while switched on. */
  publishFaults: MatchSwitch[];
  /** The local cloud's own URL, once it listens. */
  baseUrl: string | null;
}

interface ControlDeps {
  switches: QStashSwitches;
  chaos: ReturnType<typeof createChaos>;
  engine: ReturnType<typeof createEngine>;
  matches: (match: string | null, message: { url: string; body: Uint8Array }) => boolean;
}

/**
 * `/_control/qstash`: `POST /duplicate`, `/publish-fault`, `/chaos`, `/signing-key`, `/reset`,
 * `/flush` (wait until the messages matching `match` settle); `GET /messages[?match=&kind=]`,
 * `/messages/:id`, `/chaos`, `/info`.
 */
export function createControlApp({ switches, chaos, engine, matches }: ControlDeps): Hono {
  const control = new Hono();
  const readJson = async (c: Context) =>
    ((await c.req.json().catch(() => ({}))) ?? {}) as Record<string, unknown>;
  const optionalMatch = (v: unknown): string | null | undefined =>
    v === undefined || v === null ? null : typeof v === "string" ? v : undefined;

  control.post("/duplicate", async (c) => {
    const match = optionalMatch((await readJson(c)).match);
    if (match === undefined) return c.json({ error: "match must be a string" }, 400);
    switches.duplicates.push({ match });
    return c.json({ pending: switches.duplicates.length });
  });
  control.post("/publish-fault", async (c) => {
    const body = await readJson(c);
    const match = optionalMatch(body.match);
    if (match === undefined) return c.json({ error: "match must be a string" }, 400);
    if (body.mode === "error") switches.publishFaults.push({ match });
    else if (body.mode === "none") {
      switches.publishFaults =
        body.match === undefined ? [] : switches.publishFaults.filter((f) => f.match !== match);
    } else return c.json({ error: 'mode must be "error" or "none"' }, 400);
    return c.json({ faults: switches.publishFaults });
  });
  control.post("/chaos", async (c) => {
    const problem = chaos.configure(await readJson(c));
    if (problem) return c.json({ error: problem }, 400);
    return c.json(chaos.view());
  });
  control.get("/chaos", (c) => c.json(chaos.view()));
  control.post("/signing-key", async (c) => {
    const use = (await readJson(c)).use;
    if (use !== "current" && use !== "next") {
      return c.json({ error: 'use must be "current" or "next"' }, 400);
    }
    switches.signWith = use;
    return c.json({ use });
  });
  control.post("/reset", (c) => {
    switches.signWith = "current";
    switches.duplicates = [];
    switches.publishFaults = [];
    chaos.configure({});
    return c.json({ ok: true });
  });
  control.get("/messages", (c) => {
    const match = c.req.query("match");
    const kind = c.req.query("kind");
    const selected = [...engine.messages.values()].filter(
      (m) =>
        (match === undefined || engine.lineage(m, (x) => matches(match, x))) &&
        (kind === undefined || m.kind === kind),
    );
    return c.json({ messages: selected.map((m) => view(m, engine.messages)) });
  });
  control.get("/messages/:id", (c) => {
    const m = engine.messages.get(c.req.param("id"));
    if (!m) return c.json({ error: "message not found" }, 404);
    return c.json(view(m, engine.messages));
  });
  control.post("/flush", async (c) => {
    const body = await readJson(c);
    const match = optionalMatch(body.match);
    if (match === undefined) return c.json({ error: "match must be a string" }, 400);
    const timeoutMs = typeof body.timeout_ms === "number" ? body.timeout_ms : 10_000;
    const selected = (m: QStashMessage) => engine.lineage(m, (x) => matches(match, x));
    const settled = await engine.flush(selected, timeoutMs);
    const pending = [...engine.messages.values()]
      .filter((m) => selected(m) && !isSettled(m))
      .map((m) => m.id);
    return c.json({ settled, pending }, settled ? 200 : 504);
  });
  control.get("/info", (c) =>
    c.json({ base_url: switches.baseUrl, signing_key: switches.signWith }),
  );
  return control;
}

type ChaosKind = QStashMessage["kind"];
const CHAOS_KINDS: readonly ChaosKind[] = ["publish", "callback", "failure_callback"];

/**
 * Random at-least-once behaviour for soak runs (`POST /_control/qstash/chaos`): each new message
 * of the chosen kinds is, with probability `duplicate`, delivered twice (as real QStash may), and
 * with probability `hold`, held back up to `hold_ms` so messages published later overtake it
 * (reordered deliveries and callbacks). Seeded, so a run can be replayed. `{}` switches it off.
 */
export function createChaos() {
  let settings = { duplicate: 0, hold: 0, holdMs: 0, kinds: [...CHAOS_KINDS], match: "" };
  let state = 1;
  const counts = { duplicated: 0, held: 0 };
  // mulberry32: a tiny seeded generator; Math.random would make a soak run unrepeatable.
  const random = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const applies = (m: QStashMessage) =>
    settings.kinds.includes(m.kind) &&
    (settings.match === "" ||
      m.url.includes(settings.match) ||
      new TextDecoder().decode(m.body).includes(settings.match));
  const probability = (v: unknown) =>
    v === undefined ? 0 : typeof v === "number" && v >= 0 && v <= 1 ? v : null;

  return {
    configure(body: Record<string, unknown>): string | null {
      const duplicate = probability(body.duplicate);
      const hold = probability(body.hold);
      const holdMs = body.hold_ms ?? 0;
      const kinds = body.kinds ?? CHAOS_KINDS;
      const seed = body.seed ?? 1;
      const match = body.match ?? "";
      if (duplicate === null || hold === null) return "duplicate and hold are probabilities 0..1";
      if (typeof holdMs !== "number" || holdMs < 0) return "hold_ms must be >= 0";
      if (!Number.isInteger(seed)) return "seed must be an integer";
      if (typeof match !== "string") return "match must be a string";
      if (!Array.isArray(kinds) || kinds.some((k) => !CHAOS_KINDS.includes(k as ChaosKind))) {
        return `kinds must list ${CHAOS_KINDS.join(", ")}`;
      }
      settings = { duplicate, hold, holdMs, kinds: kinds as ChaosKind[], match };
      state = seed as number;
      return null;
    },
    duplicate(m: QStashMessage): boolean {
      if (settings.duplicate === 0 || !applies(m) || random() >= settings.duplicate) return false;
      counts.duplicated++;
      return true;
    },
    holdBackMs(m: QStashMessage): number {
      if (settings.hold === 0 || !applies(m) || random() >= settings.hold) return 0;
      counts.held++;
      return Math.round(random() * settings.holdMs);
    },
    view() {
      const { holdMs, ...rest } = settings;
      return { ...rest, hold_ms: holdMs, ...counts };
    },
  };
}
