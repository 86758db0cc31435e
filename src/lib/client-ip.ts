/**
 * The key a per-client limit counts under. IPv4 addresses count one by one; IPv6 addresses by
 * their /64 prefix, since one subscriber routinely holds a whole /64 (2^64 addresses) and could
 * otherwise start a fresh budget with every request. An IPv4-mapped IPv6 address counts as its
 * IPv4 address; anything unparseable counts as written.
 */
export function clientLimitKey(ip: string): string {
  const address = ip.trim().toLowerCase().split("%")[0] ?? "";
  if (!address.includes(":")) return address;
  const hextets = expandIpv6(address);
  if (!hextets) return address;
  const [a = 0, b = 0, c = 0, d = 0, e = 0, f = 0, g = 0, h = 0] = hextets;
  if (a === 0 && b === 0 && c === 0 && d === 0 && e === 0 && f === 0xffff) {
    return `${g >> 8}.${g & 255}.${h >> 8}.${h & 255}`;
  }
  return `${[a, b, c, d].map((x) => x.toString(16)).join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address (`::` and a dotted IPv4 tail allowed), or null. */
function expandIpv6(address: string): number[] | null {
  let text = address;
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const [o1 = 0, o2 = 0, o3 = 0, o4 = 0] = v4.slice(1).map(Number);
    if ([o1, o2, o3, o4].some((o) => o > 255)) return null;
    text = `${text.slice(0, v4.index)}${((o1 << 8) | o2).toString(16)}:${((o3 << 8) | o4).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const gap = 8 - head.length - tail.length;
  if (halves.length === 1 ? gap !== 0 : gap < 1) return null;
  const groups = [...head, ...Array<string>(halves.length === 2 ? gap : 0).fill("0"), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return null;
  return groups.map((g) => Number.parseInt(g, 16));
}
