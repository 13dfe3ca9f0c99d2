/** Which server and keys a client command uses: flags, then environment, then the server's config, then the default. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { CliError, EXIT } from "../../src/cli/exit.js";
import { DEFAULT_URL, normalizeUrl, resolveTarget, urlForListenAddress } from "../../src/cli/target.js";

let dir: string;
let config: string;

before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "lmx-target-"));
  config = path.join(dir, "lmx.yaml");
  writeFileSync(config, "host: 0.0.0.0\nport: 4321\nadmin_key: file-admin-key\napi_keys: [file-api-key-1, file-api-key-2]\n");
});

after(() => rmSync(dir, { recursive: true, force: true }));

test("with nothing set, the default address and no keys", () => {
  const target = resolveTarget({}, {});
  assert.deepEqual(target, { url: DEFAULT_URL, adminKey: null, apiKey: null, from: { url: "default", adminKey: null, apiKey: null } });
});

test("the config file gives address and keys; a server on every interface is reached on loopback", () => {
  const target = resolveTarget({ config }, {});
  assert.equal(target.url, "http://127.0.0.1:4321");
  assert.equal(target.adminKey, "file-admin-key");
  assert.equal(target.apiKey, "file-api-key-1");
  assert.equal(target.from.adminKey, `admin_key in ${config}`);
  assert.equal(resolveTarget({}, { LMX_CONFIG: config }).url, "http://127.0.0.1:4321");
});

test("environment beats the config file, flags beat both", () => {
  const env = { LMX_CONFIG: config, LMX_URL: "http://env-host:1", LMX_ADMIN_KEY: "env-admin-key", LMX_API_KEY: "env-api-key" };
  const fromEnv = resolveTarget({}, env);
  assert.deepEqual([fromEnv.url, fromEnv.adminKey, fromEnv.apiKey], ["http://env-host:1", "env-admin-key", "env-api-key"]);
  assert.deepEqual(fromEnv.from, { url: "LMX_URL", adminKey: "LMX_ADMIN_KEY", apiKey: "LMX_API_KEY" });
  const fromFlags = resolveTarget({ url: "flag-host:2", adminKey: "flag-admin", apiKey: "flag-api" }, env);
  assert.deepEqual([fromFlags.url, fromFlags.adminKey, fromFlags.apiKey], ["http://flag-host:2", "flag-admin", "flag-api"]);
  // the server's own LMX_PORT says where a local server listens
  assert.equal(resolveTarget({}, { LMX_PORT: "9999" }).url, "http://127.0.0.1:9999");
  assert.equal(resolveTarget({}, { LMX_PORT: "9999" }).from.url, "LMX_HOST/LMX_PORT");
});

test("URLs are normalized: scheme added, trailing slash and /v1 dropped; IPv6 bracketed", () => {
  assert.equal(normalizeUrl("localhost:1234", "--url"), "http://localhost:1234");
  assert.equal(normalizeUrl("http://h:1/v1/", "--url"), "http://h:1");
  assert.equal(normalizeUrl("https://h/prefix/", "--url"), "https://h/prefix");
  assert.equal(urlForListenAddress("::", 1234), "http://[::1]:1234");
  assert.throws(
    () => normalizeUrl("ftp://h", "--url"),
    (e: unknown) => e instanceof CliError && e.exitCode === EXIT.usage,
  );
});

test("a broken config file is a usage error naming the file", () => {
  const bad = path.join(dir, "bad.yaml");
  writeFileSync(bad, "port: [1]\n");
  assert.throws(
    () => resolveTarget({ config: bad }, {}),
    (e: unknown) => e instanceof CliError && e.exitCode === EXIT.usage && e.message.includes(bad),
  );
  // flags that leave nothing open never read it
  assert.equal(resolveTarget({ config: bad, url: "h:1", adminKey: "a", apiKey: "b" }, {}).url, "http://h:1");
});
