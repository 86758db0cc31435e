import type { Handler } from "hono";
import type { AppEnv } from "../../context";
import { contentSecurityPolicy, newNonce } from "../shared/csp";
import { PlaygroundPage } from "./page";

/** GET /: the playground, a server-rendered page that drives the JSON API from the browser. */
export const playgroundPage: Handler<AppEnv> = (c) => {
  const nonce = newNonce();
  c.header("Content-Security-Policy", contentSecurityPolicy(nonce));
  c.header("Cache-Control", "no-store");
  c.header("X-Content-Type-Options", "nosniff");
  c.header("Referrer-Policy", "no-referrer");
  return c.html(
    <PlaygroundPage nonce={nonce} codesInResponse={c.get("ctx").config.otpCodesInResponse} />,
  );
};
