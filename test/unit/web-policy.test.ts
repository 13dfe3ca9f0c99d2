/** The Host and Origin rules of src/http/security.ts, and their config keys. */
import assert from "node:assert/strict";
import os from "node:os";
import { test } from "node:test";
import { ConfigError, loadConfig } from "../../src/config/load.js";
import { createSecurityPolicy, hostName } from "../../src/http/security.js";

test("Host names: loopback names, IP addresses, the bind host and allowed_hosts pass; other names do not", () => {
  const policy = createSecurityPolicy({ host: "127.0.0.1", allowed_hosts: ["lmx.lan", ".corp.example"], cors_origins: [] });
  for (const host of [
    undefined,
    "localhost:1234",
    "LOCALHOST.",
    "app.localhost",
    "127.0.0.1:1",
    "[::1]:1234",
    "10.0.0.5",
    "lmx.lan:80",
    "corp.example",
    "gpu.corp.example:1234",
  ]) {
    assert.equal(policy.hostAllowed(host), true, String(host));
  }
  for (const host of [
    "evil.example",
    "localhost.evil.example",
    "lmx.lan.evil.example",
    "evilcorp.example",
    "127.0.0.1.nip.io",
    "a@127.0.0.1",
    "x/y",
    " ",
  ]) {
    assert.equal(policy.hostAllowed(host), false, host);
  }
  assert.equal(hostName("[::1]:80"), "::1");
  assert.equal(createSecurityPolicy({ host: "127.0.0.1", allowed_hosts: ["*"], cors_origins: [] }).hostAllowed("anything.example"), true);
});

test("the bind host is allowed; on every interface, the machine's name too", () => {
  assert.equal(createSecurityPolicy({ host: "lmx.internal", allowed_hosts: [], cors_origins: [] }).hostAllowed("lmx.internal:1234"), true);
  const wildcard = createSecurityPolicy({ host: "0.0.0.0", allowed_hosts: [], cors_origins: [] });
  assert.equal(wildcard.hostAllowed(`${os.hostname()}:1234`), true);
  assert.equal(wildcard.hostAllowed("evil.example"), false);
  assert.equal(
    createSecurityPolicy({ host: "127.0.0.1", allowed_hosts: [], cors_origins: [] }).hostAllowed(os.hostname()),
    os.hostname().toLowerCase() === "localhost",
  );
});

test("cors_origins: exact origins (normalised), * for all; paths are a config error", () => {
  const policy = createSecurityPolicy({ host: "127.0.0.1", allowed_hosts: [], cors_origins: ["http://localhost:3000", "https://App.Example"] });
  assert.equal(policy.corsAllowed("http://localhost:3000"), true);
  assert.equal(policy.corsAllowed("https://app.example"), true);
  assert.equal(policy.corsAllowed("http://localhost:3001"), false);
  assert.equal(policy.corsAllowed("null"), false);
  assert.equal(createSecurityPolicy({ host: "127.0.0.1", allowed_hosts: [], cors_origins: ["*"] }).corsAllowed("http://x.example"), true);
  assert.throws(
    () => loadConfig({ env: {}, overrides: { cors_origins: ["http://localhost:3000/app"] } }),
    (e: unknown) => e instanceof ConfigError && /cors_origins/.test(e.message),
  );
});

test("LMX_ALLOWED_HOSTS and LMX_CORS_ORIGINS are comma-separated lists; both default to empty", () => {
  const none = loadConfig({ env: {} });
  assert.deepEqual([none.allowed_hosts, none.cors_origins], [[], []]);
  const config = loadConfig({ env: { LMX_ALLOWED_HOSTS: "lmx.lan, .corp.example", LMX_CORS_ORIGINS: "http://localhost:3000,https://app.example" } });
  assert.deepEqual(config.allowed_hosts, ["lmx.lan", ".corp.example"]);
  assert.deepEqual(config.cors_origins, ["http://localhost:3000", "https://app.example"]);
});
