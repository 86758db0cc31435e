import { describe, expect, it } from "vitest";
import { clientLimitKey } from "../../src/lib/client-ip.ts";

describe("clientLimitKey", () => {
  it("counts an IPv4 address by itself", () => {
    expect(clientLimitKey("203.0.113.7")).toBe("203.0.113.7");
    expect(clientLimitKey("203.0.113.8")).not.toBe(clientLimitKey("203.0.113.7"));
  });

  it("counts IPv6 addresses by their /64, however they are written", () => {
    const key = "2001:db8:1:2::/64";
    for (const ip of [
      "2001:db8:1:2:3:4:5:6",
      "2001:0db8:0001:0002:ffff:ffff:ffff:ffff",
      "2001:DB8:1:2::9",
      "2001:db8:1:2::",
      "2001:db8:1:2::1%eth0",
    ]) {
      expect(clientLimitKey(ip), ip).toBe(key);
    }
    expect(clientLimitKey("2001:db8:1:3::1")).toBe("2001:db8:1:3::/64");
    expect(clientLimitKey("::1")).toBe("0:0:0:0::/64");
  });

  it("counts an IPv4-mapped IPv6 address as its IPv4 address", () => {
    expect(clientLimitKey("::ffff:203.0.113.7")).toBe("203.0.113.7");
    expect(clientLimitKey("::ffff:cb00:7107")).toBe("203.0.113.7");
  });

  it("keeps anything it cannot parse as written", () => {
    for (const raw of ["unknown", "1:2:3", "1::2::3", "2001:db8::zz", "::ffff:1.2.3.256", ""]) {
      expect(clientLimitKey(raw), raw).toBe(raw);
    }
  });
});
