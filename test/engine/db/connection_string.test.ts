// libpq connection strings, read and rendered without a database: URL and keyword forms, host
// and port lists, env fallbacks, every refusal (clear, located, never "Invalid URL", never the
// password), masking, and the single-host URLs that pg's own parser must read as it did before.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parse } from "pg-connection-string";
import {
  ConnectionStringError,
  describeSpec,
  isKeywordForm,
  maskConnectionString,
  parseConnectionString,
  urlForHost,
  type ConnectionSpec,
} from "../../../src/engine/db/connection-string.ts";

const noEnv = {};
const read = (text: string, env: Record<string, string | undefined> = noEnv) => parseConnectionString(text, { env });
const local = (port = 5432) => [{ host: "localhost", port }];
const spec = (fields: Partial<ConnectionSpec>): ConnectionSpec => ({ hosts: local(), targetSessionAttrs: "any", params: {}, ...fields });

// libpq's documented examples (libpq-connect §34.1.1.2) and their keyword-form equivalents.
const documented: [url: string, keywords: string | null, expected: ConnectionSpec][] = [
  ["postgresql://", null, spec({})],
  ["postgresql://localhost", "host=localhost", spec({})],
  ["postgresql://localhost:5433", "host=localhost port=5433", spec({ hosts: local(5433) })],
  ["postgresql://localhost/mydb", "host=localhost dbname=mydb", spec({ database: "mydb" })],
  ["postgresql://user@localhost", "host=localhost user=user", spec({ user: "user" })],
  ["postgresql://user:secret@localhost", "host=localhost user=user password=secret", spec({ user: "user", password: "secret" })],
  [
    "postgresql://other@localhost/otherdb?connect_timeout=10&application_name=myapp",
    "host=localhost user=other dbname=otherdb connect_timeout=10 application_name=myapp",
    spec({ user: "other", database: "otherdb", params: { connect_timeout: "10", application_name: "myapp" } }),
  ],
  [
    "postgresql://host1:123,host2:456/somedb?target_session_attrs=any&application_name=myapp",
    "host=host1,host2 port=123,456 dbname=somedb target_session_attrs=any application_name=myapp",
    spec({ hosts: [{ host: "host1", port: 123 }, { host: "host2", port: 456 }], database: "somedb", params: { application_name: "myapp" } }),
  ],
  ["postgresql:///mydb?host=localhost&port=5433", "dbname=mydb host=localhost port=5433", spec({ hosts: local(5433), database: "mydb" })],
  ["postgresql://[2001:db8::1234]/database", "host=2001:db8::1234 dbname=database", spec({ hosts: [{ host: "2001:db8::1234", port: 5432 }], database: "database" })],
  ["postgresql://[::1]:5432", "host=::1 port=5432", spec({ hosts: [{ host: "::1", port: 5432 }] })],
  ["postgresql:///dbname?host=/var/lib/postgresql", "host=/var/lib/postgresql dbname=dbname", spec({ hosts: [{ host: "/var/lib/postgresql", port: 5432 }], database: "dbname" })],
  ["postgresql://%2Fvar%2Flib%2Fpostgresql/dbname", "host=/var/lib/postgresql dbname=dbname", spec({ hosts: [{ host: "/var/lib/postgresql", port: 5432 }], database: "dbname" })],
];

/** The error a bad input gives, checked to be ours, located, and free of the password and of "Invalid URL". */
function refusal(text: string, pattern: RegExp, options: { env?: Record<string, string>; secret?: string } = {}): ConnectionStringError {
  let caught: unknown;
  try {
    parseConnectionString(text, { env: options.env ?? noEnv });
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConnectionStringError, `${text}: expected a ConnectionStringError, got ${String(caught)}`);
  assert.equal(caught.name, "ConnectionStringError");
  assert.match(caught.message, pattern);
  assert.match(caught.message, /^DATABASE_URL: /);
  assert.doesNotMatch(caught.message, /Invalid URL/);
  if (options.secret) assert.ok(!caught.message.includes(options.secret), `${caught.message} shows the password`);
  return caught;
}

describe("parseConnectionString: URL form", () => {
  for (const [url, , expected] of documented) {
    it(`reads ${url}`, () => assert.deepEqual(read(url), expected));
  }

  it("reads the multi-host URL pg cannot", () => {
    assert.deepEqual(
      read("postgres://u@h1:5432,h2:5433/db?target_session_attrs=read-write"),
      spec({ hosts: [{ host: "h1", port: 5432 }, { host: "h2", port: 5433 }], user: "u", database: "db", targetSessionAttrs: "read-write" }),
    );
  });

  it("gives hosts without a port the default, mixed with hosts that have one, IPv6 and sockets", () => {
    assert.deepEqual(read("postgres://h1,h2:5433,h3/db").hosts, [
      { host: "h1", port: 5432 },
      { host: "h2", port: 5433 },
      { host: "h3", port: 5432 },
    ]);
    assert.deepEqual(read("postgres://h1:5432,[::1]:5433,[2001:db8::7],%2Fvar%2Frun%2Fpostgresql:5434,10.0.0.2:6432/db").hosts, [
      { host: "h1", port: 5432 },
      { host: "::1", port: 5433 },
      { host: "2001:db8::7", port: 5432 },
      { host: "/var/run/postgresql", port: 5434 },
      { host: "10.0.0.2", port: 6432 },
    ]);
    assert.deepEqual(read("postgres://h1:,h2:7/db").hosts, [
      { host: "h1", port: 5432 },
      { host: "h2", port: 7 },
    ]);
  });

  it("takes host and port lists from the query, a single port for every host, the query winning over the netloc", () => {
    assert.deepEqual(read("postgres:///db?host=h1,h2&port=5432,5433").hosts, [
      { host: "h1", port: 5432 },
      { host: "h2", port: 5433 },
    ]);
    assert.deepEqual(read("postgres://h1,h2/db?port=6000").hosts, [
      { host: "h1", port: 6000 },
      { host: "h2", port: 6000 },
    ]);
    assert.deepEqual(read("postgres://ignored:1/db?host=h1,[::1]&port=,5433").hosts, [
      { host: "h1", port: 5432 },
      { host: "::1", port: 5433 },
    ]);
    assert.deepEqual(read("postgres://:5433/db").hosts, local(5433));
  });

  it("decodes the user, password, hosts, database and query values; keeps every other param; dbname/user/password as params too", () => {
    const got = read("postgres://us%40er:p%40ss%3Aw%2Fo%25rd%23%3F@%2Ftmp%2Fpg/my%20db?options=-c%20search_path%3Dfoo&sslmode=no-verify&ssl=true&uselibpqcompat=true&x=a+b%2B");
    assert.deepEqual(got, spec({
      hosts: [{ host: "/tmp/pg", port: 5432 }],
      user: "us@er",
      password: "p@ss:w/o%rd#?",
      database: "my db",
      params: { options: "-c search_path=foo", sslmode: "no-verify", ssl: "true", uselibpqcompat: "true", x: "a b+" },
    }));
    assert.deepEqual(read("postgres://a:b@h/x?dbname=y&user=u2&password=p2"), spec({ hosts: [{ host: "h", port: 5432 }], database: "y", user: "u2", password: "p2" }));
    assert.deepEqual(read("POSTGRES://h?&sslmode=require&").params, { sslmode: "require" });
    assert.equal(read("postgres://u:p@ss@h/db").password, "p@ss", "the last @ ends the user info, as for pg");
    assert.equal(read("  postgres://h/db\n").database, "db");
  });

  it("accepts each target_session_attrs libpq knows", () => {
    for (const attrs of ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"]) {
      assert.equal(read(`postgres://h/db?target_session_attrs=${attrs}`).targetSessionAttrs, attrs);
      assert.equal(read(`host=h target_session_attrs=${attrs}`).targetSessionAttrs, attrs);
    }
  });
});

describe("parseConnectionString: keyword form", () => {
  for (const [url, keywords] of documented) {
    if (keywords) it(`reads ${keywords} as ${url}`, () => assert.deepEqual(read(keywords), read(url)));
  }

  it("reads quoted values, escapes, spaces around =, and lets a later keyword win", () => {
    const got = read(`host = h1,h2  port=5432,5433\tdbname=platform user=u password='a b\\' c\\\\' options='-c statement_timeout=5s' application_name=x\\ y target_session_attrs=read-write dbname=other empty=''`);
    assert.deepEqual(got, spec({
      hosts: [{ host: "h1", port: 5432 }, { host: "h2", port: 5433 }],
      database: "other",
      user: "u",
      password: "a b' c\\",
      targetSessionAttrs: "read-write",
      params: { options: "-c statement_timeout=5s", application_name: "x y", empty: "" },
    }));
  });

  it("reads port lists with an empty entry as the default port, one port for all, bracketed IPv6", () => {
    assert.deepEqual(read("host=a,b,c port=1,,3").hosts, [
      { host: "a", port: 1 },
      { host: "b", port: 5432 },
      { host: "c", port: 3 },
    ]);
    assert.deepEqual(read("host=a,[::1],/sock port=7").hosts, [
      { host: "a", port: 7 },
      { host: "::1", port: 7 },
      { host: "/sock", port: 7 },
    ]);
  });

  it("takes hostaddr as the host when no host is given, and keeps it as a param beside one", () => {
    assert.deepEqual(read("hostaddr=10.0.0.1 port=5433").hosts, [{ host: "10.0.0.1", port: 5433 }]);
    const both = read("host=db.example.com hostaddr=10.0.0.1");
    assert.deepEqual(both.hosts, [{ host: "db.example.com", port: 5432 }]);
    assert.deepEqual(both.params, { hostaddr: "10.0.0.1" });
  });
});

describe("parseConnectionString: environment fallbacks", () => {
  const env = { PGHOST: "e1,e2", PGPORT: "6001,6002", PGDATABASE: "envdb", PGUSER: "envuser", PGPASSWORD: "envpw", PGTARGETSESSIONATTRS: "primary" };

  it("fills what the string leaves out, host and port lists included", () => {
    assert.deepEqual(read("postgres://", env), spec({
      hosts: [{ host: "e1", port: 6001 }, { host: "e2", port: 6002 }],
      database: "envdb",
      user: "envuser",
      password: "envpw",
      targetSessionAttrs: "primary",
    }));
    assert.deepEqual(read("sslmode=require", { PGHOST: "/run/pg,h2", PGPORT: "6000" }).hosts, [
      { host: "/run/pg", port: 6000 },
      { host: "h2", port: 6000 },
    ]);
  });

  it("never overrides the string, gives PGPORT to hosts without a port, and ignores empty variables", () => {
    assert.deepEqual(read("postgres://u:p@h1:1,h2/db?target_session_attrs=standby", { ...env, PGPORT: "6000" }), spec({
      hosts: [{ host: "h1", port: 1 }, { host: "h2", port: 6000 }],
      database: "db",
      user: "u",
      password: "p",
      targetSessionAttrs: "standby",
    }));
    assert.deepEqual(read("postgres://h1:1,h2", { PGPORT: "6000,6001" }).hosts, [
      { host: "h1", port: 1 },
      { host: "h2", port: 5432 },
    ]);
    assert.deepEqual(read("postgres://", { PGHOST: "", PGPORT: "", PGUSER: "", PGTARGETSESSIONATTRS: "" }), spec({}));
  });
});

describe("parseConnectionString: refusals", () => {
  const secret = "s3cr3tpw";

  it("an unknown scheme, an empty string, something that is neither form", () => {
    refusal(`mysql://u:${secret}@h/db`, /unknown scheme "mysql:" \(expected postgres:\/\/ or postgresql:\/\/\)/, { secret });
    refusal(`postgres:u:${secret}@h`, /"postgres:" must be followed by "\/\/"/, { secret });
    refusal("", /the connection string is empty/);
    refusal(" \n\t", /the connection string is empty/);
    refusal("localhost", /"localhost" is neither a postgres:\/\/ URL nor key=value pairs/);
  });

  it("a port that is not a number or out of range, naming the host and where the port came from", () => {
    refusal(`postgres://u:${secret}@h1:5432,h2:54x2/db`, /: port "54x2" of host 2 \(h2\) is not a number$/, { secret });
    refusal(`host=h1,h2 port=1,-5 password=${secret}`, /port "-5" of host 2 \(h2\) is not a number/, { secret });
    refusal("postgres://h:0/db", /port 0 of host 1 \(h\) is not between 1 and 65535/);
    refusal("postgres://h:70000/db", /port 70000 of host 1 \(h\) is not between 1 and 65535/);
    refusal("postgres://h/db", /port "abc" of host 1 \(h\) \(from PGPORT\) is not a number/, { env: { PGPORT: "abc" } });
  });

  it("unbalanced brackets and bare IPv6", () => {
    refusal(`postgres://u:${secret}@[::1:5432/db`, /host 1 \("\[::1:5432"\) has "\[" without a closing "\]"/, { secret });
    refusal("postgres://h1,[::1/db", /host 2 \("\[::1"\) has "\[" without a closing "\]"/);
    refusal("postgres://::1]/db", /has "\]" without an opening "\["/);
    refusal("postgres://[::1]x:5/db", /has "x:5" after "\]"/);
    refusal("postgres://[]:5/db", /empty IPv6 address/);
    refusal("postgres://::1/db", /host 1 \("::1"\) looks like an IPv6 address: write it in brackets/);
  });

  it("bad percent-encoding, naming the part but never showing the password", () => {
    refusal(`postgres://u:${secret}%zz@h/db`, /bad percent-encoding in the password$/, { secret });
    refusal(`postgres://u:${secret}%00@h/db`, /bad percent-encoding in the password$/, { secret });
    refusal(`postgres://u:${secret}%ff@h/db`, /bad percent-encoding in the password$/, { secret });
    refusal("postgres://h/my%zzdb", /bad percent-encoding in the database name \("my%zzdb"\)/);
    refusal("postgres://h%4/db", /bad percent-encoding in host 1 \("h%4"\)/);
    refusal("postgres://us%g0r@h/db", /bad percent-encoding in the user name/);
    refusal("postgres://h/db?application_name=%", /bad percent-encoding in query parameter "application_name"/);
    refusal(`postgres://h/db?password=${secret}%2`, /bad percent-encoding in query parameter "password"$/, { secret });
  });

  it("unencoded / or ? in a password, which would end the host part early", () => {
    refusal(`postgres://u:${secret}/x@h/db`, /"@" after the host part: percent-encode "\/", "\?" and "@"/, { secret });
    refusal(`postgres://u:${secret}?x@h/db`, /"@" after the host part/, { secret });
    assert.equal(read("postgres://h/d@b").database, "d@b", "an @ in a database name is fine, as for pg");
    assert.equal(read("postgres://h:5432/db?application_name=a@b").params.application_name, "a@b");
  });

  it("an empty host in a list", () => {
    refusal(`postgres://u:${secret}@h1,,h2/db`, /host 2 of "h1,,h2" is empty/, { secret });
    refusal("postgres://h1,/db", /host 2 of "h1," is empty/);
    refusal("postgres://h1,:5433/db", /host 2 of "h1," is empty/);
    refusal("host=,h2", /host 1 of ",h2" is empty/);
    refusal("dbname=x", /host 2 of "a,,b" \(from PGHOST\) is empty/, { env: { PGHOST: "a,,b" } });
  });

  it("keywords without =, an unterminated quote, a query parameter without =", () => {
    refusal(`host=h1 port password=${secret}`, /missing "=" after "port" \(item 2\)/, { secret });
    refusal(`host=h password=${secret} word`, /item 3 \(after password\) has no "="; quote a value that holds spaces/, { secret });
    refusal(`host=h =x`, /item 2 has "=" without a keyword before it/);
    refusal(`host=h password='${secret}`, /the quoted value of password is not terminated/, { secret });
    refusal(`host=h password='${secret}\\'`, /the quoted value of password is not terminated/, { secret });
    refusal("postgres://h/db?sslmode", /query parameter "sslmode" has no "="/);
  });

  it("a port count that matches neither one nor the hosts", () => {
    refusal("postgres://h1,h2/db?port=1,2,3", /3 ports for 2 hosts: give one port for all hosts, or one per host/);
    refusal("host=a,b,c port=1,2", /2 ports for 3 hosts/);
    refusal("postgres://h1,h2,h3/db", /2 ports \(from PGPORT\) for 3 hosts/, { env: { PGPORT: "1,2" } });
  });

  it("a target_session_attrs libpq does not know", () => {
    const allowed = /is not one of any, read-write, read-only, primary, standby, prefer-standby$/;
    refusal("postgres://h/db?target_session_attrs=primry", new RegExp(`target_session_attrs "primry" ${allowed.source}`));
    refusal("host=h target_session_attrs=READ-WRITE", /target_session_attrs "READ-WRITE" is not one of/);
    refusal("postgres://h/db", /target_session_attrs "master" \(from PGTARGETSESSIONATTRS\) is not one of/, { env: { PGTARGETSESSIONATTRS: "master" } });
  });

  it("labels messages as asked, and keeps the bare problem apart", () => {
    assert.throws(
      () => parseConnectionString("postgres://h:x/db", { env: noEnv, label: "REPLICA_URL" }),
      (error: unknown) => error instanceof ConnectionStringError && error.message === `REPLICA_URL: ${error.problem}` && error.problem === 'port "x" of host 1 (h) is not a number',
    );
    assert.throws(
      () => parseConnectionString("postgres://h:x/db", { env: noEnv, label: "" }),
      (error: unknown) => error instanceof ConnectionStringError && error.message === error.problem,
    );
  });
});

describe("maskConnectionString", () => {
  const cases: [string, string][] = [
    ["postgres://u:s3cret@h/db", "postgres://u:***@h/db"],
    ["postgres://u:p%40ss@h1:5432,h2:5433/db?target_session_attrs=read-write", "postgres://u:***@h1:5432,h2:5433/db?target_session_attrs=read-write"],
    ["postgres://u@h/db?password=s3cret&sslmode=require&sslpassword=k3y", "postgres://u@h/db?password=***&sslmode=require&sslpassword=***"],
    ["postgres://u:s3/cret@h/db", "postgres://u:***@h/db"],
    ["postgres://u:s3?cret@h/db", "postgres://u:***@h/db"],
    ["postgres://u:s3@cret@h/db?application_name=a@b", "postgres://u:***@h/db?application_name=a@b"],
    ["postgres://u@h:5432/db?application_name=me@x", "postgres://u@h:5432/db?application_name=me@x"],
    ["postgres://h/db", "postgres://h/db"],
    ["u:s3cret@h", "u:***@h"],
    ["host=h password=s3cret user=u", "host=h password=*** user=u"],
    ["host=h password = 's3 c\\'ret' user=u", "host=h password = *** user=u"],
    ["host=h password=s3 cret user=u", "host=h password=*** ***"],
    ["host=h password='s3cret", "host=h password=***"],
    ["host=h sslpassword=k3y dbname=d", "host=h sslpassword=*** dbname=d"],
    ["host=h dbname=d", "host=h dbname=d"],
  ];
  for (const [text, masked] of cases) {
    it(`masks ${text}`, () => assert.equal(maskConnectionString(text), masked));
  }

  it("never throws and never shows the password on odd input", () => {
    for (const text of ["", "%", "postgres://", "'", "=", "postgres://:s3cret@", "postgres://u:s3cret@[", "password", "a=b c", "postgres://u:s3%zzcret@h"]) {
      const masked = maskConnectionString(text);
      assert.equal(typeof masked, "string");
      assert.ok(!masked.includes("s3cret") && !masked.includes("cret"), `${text} → ${masked}`);
    }
  });
});

describe("isKeywordForm and describeSpec", () => {
  it("tells keyword strings from URLs", () => {
    assert.equal(isKeywordForm("host=h dbname=d"), true);
    assert.equal(isKeywordForm("  dbname = d"), true);
    assert.equal(isKeywordForm("postgres://h/db?sslmode=require"), false);
    assert.equal(isKeywordForm("mysql://h?x=y"), false);
    assert.equal(isKeywordForm("localhost"), false);
  });

  it("writes hosts as a person would, with the database and without credentials", () => {
    const many = read("postgres://u:s3cret@h1:5432,[::1]:5433,%2Fvar%2Frun%2Fpostgresql/platform");
    assert.equal(describeSpec(many), "h1:5432,[::1]:5433,/var/run/postgresql:5432/platform");
    assert.equal(describeSpec(read("host=h")), "h:5432");
  });
});

describe("urlForHost: pg's own parser reads it back", () => {
  type PgView = Record<string, unknown>;
  // What pg takes from a connection string; pg itself fills an empty host and port with localhost and 5432.
  const view = (text: string): PgView => {
    const c = parse(text);
    return { host: c.host || "localhost", port: c.port || "5432", database: c.database ?? null, user: c.user || undefined, password: c.password || undefined, ssl: c.ssl, application_name: c.application_name, options: c.options };
  };

  const singleHost = [
    "postgres://localhost/db",
    "postgres://user:pass@db.example.com:5433/app",
    "postgres://user:pass@db.example.com/app?sslmode=require",
    "postgres://user@h/app?ssl=true",
    "postgres://user@h/app?ssl=0",
    "postgres://user@h/app?application_name=x",
    "postgres://user@h/app?application_name=two+words",
    "postgres://user@h/app?options=-c%20search_path%3Dfoo",
    "postgres://user:p%40%3A%2F%25%23%3F@h:5432/app",
    "postgres://user:pass@h",
    "postgresql://user:pass@h:6432",
    "postgres://%2Fvar%2Frun%2Fpostgresql/app",
    "postgres:///app?host=/var/run/postgresql",
    "postgres://u:p@[::1]:5432/app",
    "postgres://u:p@10.0.0.5:6432/app?sslmode=no-verify&application_name=my%20app",
    "postgres://u@h/app?sslmode=disable&uselibpqcompat=true",
    "postgres://us%40er:pw@h/my-db_1;v2",
    "postgres://user:pw@/app",
    "postgres://u:p@h:5432/app?sslmode=verify-full&application_name=a%26b%3Dc",
  ];
  for (const text of singleHost) {
    it(`round-trips ${text}`, () => {
      const got = read(text);
      assert.equal(got.hosts.length, 1);
      const url = urlForHost(got, got.hosts[0]!);
      assert.deepEqual(view(url), view(text), url);
    });
  }

  it("renders each host of multi-host specs, URL and keyword forms, without target_session_attrs", () => {
    const specs = [
      read("postgres://u:p%40ss%2F@h1:5432,[::1]:5433,%2Fvar%2Frun%2Fpostgresql:5434/app?sslmode=require&application_name=x&options=-c%20a%3Db&target_session_attrs=read-write"),
      read("host=h1,2001:db8::1,/tmp port=1,,3 dbname='my db' user=u password='a b\\'c' application_name='x y' target_session_attrs=primary"),
    ];
    for (const s of specs) {
      assert.ok(s.hosts.length === 3);
      for (const host of s.hosts) {
        const url = urlForHost(s, host);
        assert.doesNotMatch(url, /target_session_attrs/);
        const c = parse(url);
        assert.deepEqual(
          { host: c.host, port: c.port, database: c.database, user: c.user, password: c.password, application_name: c.application_name, options: c.options },
          { host: host.host, port: String(host.port), database: s.database, user: s.user, password: s.password, application_name: s.params.application_name, options: s.params.options },
          url,
        );
        assert.equal(c.target_session_attrs, undefined);
        assert.deepEqual(read(url).hosts, [host]);
      }
    }
  });

  it("carries database names pg decodes literally, and every param", () => {
    const s = read("host=h dbname='a;b:c@d&e=f+g$h,i%j k' sslrootcert=/etc/ca.pem keepalives=0 connect_timeout=5");
    const url = urlForHost(s, s.hosts[0]!);
    assert.equal(parse(url.replace(/\?.*/, "")).database, "a;b:c@d&e=f+g$h,i%j k");
    assert.deepEqual(read(url).params, { sslrootcert: "/etc/ca.pem", keepalives: "0", connect_timeout: "5" });
  });

  it("renders a spec with a password but no user", () => {
    const s = read("postgres://:pw@h/db");
    assert.equal(s.user, undefined);
    assert.equal(parse(urlForHost(s, s.hosts[0]!)).password, "pw");
  });
});
