/** The optional log file rotates by size and keeps a bounded number of files. */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { showLogsOnFailure, startTestServer, waitFor } from "../helpers/server.js";
import { testModel } from "../helpers/models.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-logs-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("log_file rotates at log_rotate_size and keeps log_keep rolled files, with current.log on the active one", async () => {
  const server = await startTestServer({
    log_level: "debug",
    log_file: path.join(dir, "lmx.log"),
    log_rotate_size: "4k",
    log_keep: 2,
    models: [{ id: "m", path: (await testModel("stories260K.gguf")).path, context_size: 256 }],
  });
  try {
    await showLogsOnFailure(server, async () => {
      for (let i = 0; i < 60; i++) await fetch(`${server.url}/v1/models`);
      await fetch(`${server.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "m", prompt: "Once upon a time", max_tokens: 4 }),
      });
      const logs = () => readdirSync(dir).filter((f) => /^lmx\.\d+\.log$/.test(f));
      await waitFor(() => logs().length >= 2, 5_000, "a rotation");
      assert.ok(logs().length <= 3, `at most log_keep rolled files plus the active one: ${logs().join(", ")}`);
      assert.ok(existsSync(path.join(dir, "current.log")));
      const active = readFileSync(path.join(dir, "current.log"), "utf8").trim().split("\n").filter(Boolean);
      assert.ok(
        active.every((line) => typeof (JSON.parse(line) as { level: number }).level === "number"),
        "JSON lines",
      );
      // the same lines went to stdout, held out of the test report (shown if this test fails)
      assert.match(server.logs(), /"msg":"opta-lmx listening"/);
    });
  } finally {
    await server.stop();
  }
});

test("held server logs are shown when the test body fails, and only then", async () => {
  const server = { logs: () => '{"level":30,"msg":"held line"}\n' } as Parameters<typeof showLogsOnFailure>[0];
  let shown = "";
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => ((shown += chunk), true)) as typeof process.stderr.write;
  try {
    assert.equal(await showLogsOnFailure(server, async () => 42), 42);
    assert.equal(shown, "");
    await assert.rejects(
      showLogsOnFailure(server, async () => assert.fail("the test failed")),
      /the test failed/,
    );
  } finally {
    process.stderr.write = write;
  }
  assert.match(shown, /server logs of the failed test[\s\S]*held line/);
});
