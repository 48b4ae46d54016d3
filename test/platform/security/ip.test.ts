import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseDuration } from "../../../src/platform/security/duration.ts";
import { cidrSchema, countryCodeSchema, parseCidr, parseIp } from "../../../src/platform/security/ip.ts";
import { useTestDatabase } from "../../helpers/db.ts";

const db = useTestDatabase();

describe("parseIp", () => {
  it("accepts IPv4 and IPv6 host addresses, trimmed", () => {
    for (const [text, value] of [["203.0.113.7", "203.0.113.7"], [" 2001:db8::7 ", "2001:db8::7"], ["::ffff:192.0.2.1", "::ffff:192.0.2.1"], ["::1", "::1"]]) {
      assert.deepEqual(parseIp(text!), { ok: true, value });
    }
  });
  it("rejects everything else with an example", () => {
    for (const text of ["", "300.1.1.1", "1.2.3", "10.0.0.0/8", "fe80::1%eth0", "example.com", "2001:db8:::1"]) {
      const result = parseIp(text);
      assert.equal(result.ok, false, text);
      if (!result.ok) assert.match(result.error, /is not an IPv4 or IPv6 address \(examples: /);
    }
  });
});

describe("parseCidr", () => {
  const good: [string, string][] = [
    ["203.0.113.0/24", "203.0.113.0/24"],
    ["10.0.0.0/8", "10.0.0.0/8"],
    ["0.0.0.0/0", "0.0.0.0/0"],
    ["203.0.113.9", "203.0.113.9/32"],
    ["2001:db8::/32", "2001:db8::/32"],
    ["2001:db8:dc::/48", "2001:db8:dc::/48"],
    ["::/0", "::/0"],
    ["::ffff:192.0.2.0/120", "::ffff:192.0.2.0/120"],
    ["2001:db8::1", "2001:db8::1/128"],
  ];
  for (const [text, value] of good) it(`accepts ${text}`, () => assert.deepEqual(parseCidr(text), { ok: true, value }));

  const bad: [string, RegExp][] = [
    ["10.0.0.1/8", /bits set after the \/8 prefix; write the network address, e.g\. 10\.0\.0\.0\/8/],
    ["2001:db8::1/32", /e\.g\. 2001:db8::\/32/],
    ["203.0.113.0/33", /prefix length must be 0 to 32/],
    ["2001:db8::/129", /prefix length must be 0 to 128/],
    ["203.0.113.0/", /prefix length/],
    ["203.0.113.0/-1", /prefix length/],
    ["nonsense/24", /is not an IPv4 or IPv6 address/],
  ];
  for (const [text, pattern] of bad) {
    it(`rejects ${text}`, () => {
      const result = parseCidr(text);
      assert.equal(result.ok, false);
      if (!result.ok) assert.match(result.error, pattern);
    });
  }

  it("agrees with PostgreSQL's cidr type on every accepted value", async () => {
    for (const [, value] of good) {
      const { rows } = await db.pool.query("select $1::cidr::text as pg", [value]);
      assert.equal(rows[0].pg, value);
    }
    for (const [text] of bad.slice(0, 2)) {
      await assert.rejects(db.pool.query("select $1::cidr", [text]), /invalid cidr value/, `PostgreSQL rejects ${text} too`);
    }
  });

  it("zod schemas normalise and explain", () => {
    assert.deepEqual(cidrSchema.parse(" 198.51.100.0/24 "), "198.51.100.0/24");
    assert.match(JSON.stringify(cidrSchema.safeParse("1.2.3.4/8").error?.issues), /1\.0\.0\.0\/8/);
    assert.equal(countryCodeSchema.parse("ru"), "RU");
    assert.equal(countryCodeSchema.safeParse("RUS").success, false);
  });
});

describe("parseDuration", () => {
  const good: [string, number][] = [
    ["30s", 30],
    ["30m", 1800],
    ["12h", 43_200],
    ["7d", 604_800],
    ["2w", 1_209_600],
    ["1d12h", 129_600],
    [" 1H30M ", 5400],
    ["3650d", 3650 * 86_400],
  ];
  for (const [text, seconds] of good) it(`${text} = ${seconds}s`, () => assert.deepEqual(parseDuration(text), { ok: true, value: seconds }));

  for (const text of ["", "7", "7 days", "d7", "1.5h", "-1d", "0s", "3651d", "1y"]) {
    it(`rejects '${text}'`, () => {
      const result = parseDuration(text);
      assert.equal(result.ok, false);
      if (!result.ok) assert.match(result.error, new RegExp(`'${text}'`));
    });
  }
});
