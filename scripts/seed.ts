// `npm run seed`: a demo account against `npm run dev` — a user, two chatrooms with a few
// exchanges answered through the queue — then a ready access token and curl lines to try.
// Run it again at will: it logs the same user in and leaves existing chatrooms as they are.
//
//   node scripts/seed.ts [--base-url http://127.0.0.1:8787] [--mobile +15550199000]
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};
const base = arg("base-url", "http://127.0.0.1:8787").replace(/\/+$/, "");
const mobile = arg("mobile", "+15550199000");
/** The demo account's password (local development only). */
const PASSWORD = "demo password 1";

export const ROOMS = [
  {
    title: "Trip to Lisbon",
    prompts: ["Plan a relaxed three-day trip to Lisbon.", "Which day suits a visit to Sintra?"],
  },
  { title: "Cat names", prompts: ["Suggest three names for a grey cat."] },
];

interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: the API's JSON, checked by status here
  body: any;
}

async function api(method: string, path: string, body?: unknown, token?: string): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

function expectStatus(res: Answer, statuses: number[], step: string): void {
  if (!statuses.includes(res.status)) {
    const error = res.body?.error;
    throw new Error(
      `${step}: HTTP ${res.status}${error ? ` ${error.code}: ${error.message}` : ""}`,
    );
  }
}

async function main() {
  try {
    expectStatus(await api("GET", "/health"), [200], "health");
  } catch (err) {
    console.error(
      `No healthy API at ${base} (${(err as Error).message}). Start it with \`npm run dev\`.`,
    );
    process.exit(1);
  }

  // The first run proves the number with a code, presenting the signup_token so the signup's
  // password is kept (docs/adr/0008-credentials.md); later runs log in with that password, which
  // has no code cool-down, so the seed can run again right away.
  const signup = await api("POST", "/auth/signup", {
    mobile_number: mobile,
    name: "Demo User",
    password: PASSWORD,
  });
  expectStatus(signup, [201, 409], "signup");
  let session = await api("POST", "/auth/login", { mobile_number: mobile, password: PASSWORD });
  if (session.status === 401) {
    // A new number (its password works once a code proved it), or one signed up some other way.
    const sent = await api("POST", "/auth/send-otp", { mobile_number: mobile });
    expectStatus(sent, [200], "send-otp");
    if (!sent.body.otp) {
      console.error("The API does not echo login codes: set OTP_DELIVERY=response in .dev.vars.");
      process.exit(1);
    }
    session = await api("POST", "/auth/verify-otp", {
      mobile_number: mobile,
      otp: sent.body.otp,
      challenge_id: sent.body.challenge_id,
      ...(signup.status === 201 ? { signup_token: signup.body.signup_token } : {}),
    });
  }
  expectStatus(session, [200], "login");
  const token: string = session.body.token;

  const listed = await api("GET", "/chatroom?limit=100", undefined, token);
  expectStatus(listed, [200], "list chatrooms");
  const existing = new Map<string, string>(
    listed.body.chatrooms.map((r: { id: string; title: string }) => [r.title, r.id]),
  );
  const rooms: { id: string; title: string }[] = [];
  for (const room of ROOMS) {
    let id = existing.get(room.title);
    if (!id) {
      const created = await api("POST", "/chatroom", { title: room.title }, token);
      expectStatus(created, [201], `create "${room.title}"`);
      id = created.body.chatroom.id as string;
    }
    rooms.push({ id, title: room.title });
    const history = await api("GET", `/chatroom/${id}/messages`, undefined, token);
    expectStatus(history, [200], "messages");
    if (history.body.messages.length > 0) continue; // seeded before: keep the quota
    for (const content of room.prompts) {
      const accepted = await api("POST", `/chatroom/${id}/message`, { content }, token);
      expectStatus(accepted, [202], `prompt in "${room.title}"`);
      await waitForReply(id, accepted.body.reply.id, token);
    }
  }

  const [first] = rooms;
  console.log(`
Seeded ${base}: user ${mobile} ("Demo User", password "${PASSWORD}"), chatrooms ${rooms.map((r) => `"${r.title}"`).join(" and ")}.

export B=${base}
export TOKEN=${token}
export REFRESH_TOKEN=${session.body.refresh_token}
export ROOM=${first?.id}

curl -s $B/user/me -H "authorization: Bearer $TOKEN"
curl -s $B/chatroom -H "authorization: Bearer $TOKEN"
curl -s $B/chatroom/$ROOM/messages -H "authorization: Bearer $TOKEN"
curl -si $B/chatroom/$ROOM/message -H "authorization: Bearer $TOKEN" \\
  -H 'content-type: application/json' -d '{"content":"And a good day for the beach?"}'
curl -s $B/subscription/status -H "authorization: Bearer $TOKEN"
curl -s $B/auth/refresh -H 'content-type: application/json' -d "{\\"refresh_token\\":\\"$REFRESH_TOKEN\\"}"

The access token lasts ${Math.round(session.body.expires_in / 60)} minutes; run \`npm run seed\` again for a new one.
Docs with a try-it client: ${base}/docs   Playground: ${base}/`);
}

/** Polls a reply until the queue has answered it (the local cloud answers within a second). */
async function waitForReply(roomId: string, replyId: string, token: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const res = await api("GET", `/chatroom/${roomId}/messages/${replyId}`, undefined, token);
    expectStatus(res, [200], "poll reply");
    if (res.body.message.status !== "pending") return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `reply ${replyId} still pending after 30 s: is the local cloud's QStash running?`,
  );
}

if (import.meta.main) await main();
