// Outbound calls fail closed: a test may only reach loopback (the local cloud and the Worker),
// so nothing passes by reaching the internet or a real vendor.
const realFetch = globalThis.fetch;

function isLoopback(input: string | URL | Request): boolean {
  const url = new URL(input instanceof Request ? input.url : input.toString());
  return ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
}

globalThis.fetch = ((input: string | URL | Request, init?: RequestInit) => {
  if (!isLoopback(input)) {
    const target = input instanceof Request ? input.url : input.toString();
    return Promise.reject(new Error(`test tried to reach ${target}: only loopback is allowed`));
  }
  return realFetch(input, init);
}) as typeof fetch;
