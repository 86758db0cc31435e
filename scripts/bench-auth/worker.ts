// A tiny Worker for scripts/bench-auth.ts: runs the production password hash and access-token
// verification n times per request inside workerd. Never deployed; not part of src/.
import { hashPassword, verifyPassword } from "../../src/lib/passwords";
import { createAccessTokens } from "../../src/lib/tokens";

const tokens = createAccessTokens("bench-jwt-secret-0123456789abcdef0123456789abcdef", 900);

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get("n") ?? "1");
    if (url.pathname === "/hash") {
      let stored = "";
      for (let i = 0; i < n; i++) stored = await hashPassword("correct horse battery staple");
      return Response.json({ ok: n === 0 || stored.startsWith("pbkdf2-sha256$100000$") });
    }
    if (url.pathname === "/verify-password") {
      const stored = await hashPassword("correct horse battery staple");
      let ok = true;
      for (let i = 0; i < n; i++)
        ok &&= await verifyPassword("correct horse battery staple", stored);
      return Response.json({ ok });
    }
    if (url.pathname === "/verify-token") {
      const now = new Date();
      const { token } = await tokens.sign("01936f4e-1c2d-7b3a-9f00-123456789abc", now, "s");
      let ok = true;
      for (let i = 0; i < n; i++) ok &&= (await tokens.verify(token, now)).userId.length > 0;
      return Response.json({ ok });
    }
    return new Response("not found", { status: 404 });
  },
};
