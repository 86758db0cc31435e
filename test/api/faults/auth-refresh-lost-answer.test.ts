import { afterEach, describe, expect, it } from "vitest";
import { QUERY_TIMEOUT_MS } from "../../../src/db/client.ts";
import { call, control, waitFor } from "../../support/api.ts";
import { createSession } from "../../support/session.ts";
import { hashOf, liveTokenHashes, refresh, rowOf, tokensOf } from "../refresh-support.ts";

const ROUND_ONE_DELAY_MS = 1_000;
/** A statement runs this long after it was sent: past the Worker's deadline, then commits. */
const LATE_COMMIT_MS = QUERY_TIMEOUT_MS + 2_000;

afterEach(async () => {
  await control("neon/fault", { mode: "none" });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const me = (token: string) => call("GET", "/user/me", { token });

describe("a refresh whose rotation commits after the Worker's database deadline", () => {
  it(
    "is answered by the client's retry of the same token: a working pair, the session kept",
    async () => {
      // Soak finding 10: the rotation committed, its answer was lost (503), and the retry of the
      // same token looked like a replay: theft detection logged the user out.
      const s = await createSession();
      // The rotation is refresh's only round: the local Neon runs it LATE_COMMIT_MS after it
      // was sent, after the Worker has given up on it.
      await control("neon/fault", { mode: "slow", ms: LATE_COMMIT_MS });
      const lost = await refresh(s.refresh_token);
      await control("neon/fault", { mode: "none" });
      expect(lost.status).toBe(503);
      expect(lost.body.error.code).toBe("dependency_unavailable");
      // Committed after the 503: the token is rotated and has a successor nobody received.
      await waitFor(async () => (await rowOf(s.refresh_token))?.rotated_at, 15_000, 200);
      const original = await rowOf(s.refresh_token);
      const [unreceived] = (await tokensOf(s.user.id)).filter((r) => r.parent_id === original?.id);
      expect(unreceived?.revoked_at).toBeNull();

      const retry = await refresh(s.refresh_token);
      expect(retry.status, retry.text).toBe(200);
      expect((await me(retry.body.token)).status).toBe(200);
      // The family is alive and its one live token is the retry's; the lost successor is dead.
      expect(await liveTokenHashes(s.user.id)).toEqual([hashOf(retry.body.refresh_token)]);
      const after = (await tokensOf(s.user.id)).find((r) => r.id === unreceived?.id);
      expect(after?.revoked_at).not.toBeNull();
      expect((await me(s.token)).status).toBe(200);
      const next = await refresh(retry.body.refresh_token);
      expect(next.status).toBe(200);
      expect((await me(next.body.token)).status).toBe(200);
    },
    LATE_COMMIT_MS + 30_000,
  );

  it(
    "still works when the retry's own answer is lost too",
    async () => {
      const s = await createSession();
      await control("neon/fault", { mode: "slow", ms: LATE_COMMIT_MS });
      expect((await refresh(s.refresh_token)).status).toBe(503);
      await control("neon/fault", { mode: "none" });
      await waitFor(async () => (await rowOf(s.refresh_token))?.rotated_at, 15_000, 200);

      // The retry's first round (the rotation attempt) waits ROUND_ONE_DELAY_MS; its second
      // (the reissue), sent after it, meets LATE_COMMIT_MS: committed after another 503.
      await control("neon/fault", { mode: "slow", ms: ROUND_ONE_DELAY_MS });
      const sent = refresh(s.refresh_token);
      await sleep(ROUND_ONE_DELAY_MS / 2);
      await control("neon/fault", { mode: "slow", ms: LATE_COMMIT_MS });
      const lostAgain = await sent;
      await control("neon/fault", { mode: "none" });
      expect(lostAgain.status).toBe(503);
      const original = await rowOf(s.refresh_token);
      const children = async () =>
        (await tokensOf(s.user.id)).filter((r) => r.parent_id === original?.id);
      await waitFor(async () => (await children()).length === 2, 15_000, 200);

      const third = await refresh(s.refresh_token);
      expect(third.status, third.text).toBe(200);
      expect(await liveTokenHashes(s.user.id)).toEqual([hashOf(third.body.refresh_token)]);
      expect((await children()).length).toBe(3);
      expect((await refresh(third.body.refresh_token)).status).toBe(200);
    },
    2 * LATE_COMMIT_MS + 30_000,
  );
});
