/** Failures are classified, remembered and routed around: fallback, quarantine, canary, probes, full disks. */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { writeNanWeightsCopy } from "../../src/gguf/fixtures.js";
import { getJson, startTestServer, waitFor, type TestServer } from "../helpers/server.js";
import { testModel, type TestModel } from "../helpers/models.js";

let story: TestModel;
let chat: TestModel;
let dir: string;
const json = { "content-type": "application/json" };

before(async () => {
  story = await testModel("stories260K.gguf");
  chat = await testModel("stories260K-chatml.gguf");
  dir = mkdtempSync(path.join(os.tmpdir(), "lmx-reliability-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Fault injection is test-only: both variables, set before the server starts its runners. */
function withFaults(load: Record<string, string>): () => void {
  process.env["LMX_ENABLE_FAULT_INJECTION"] = "1";
  process.env["LMX_FAULT_INJECTION"] = JSON.stringify({ load });
  return () => {
    delete process.env["LMX_ENABLE_FAULT_INJECTION"];
    delete process.env["LMX_FAULT_INJECTION"];
  };
}

interface Attempt {
  model_id: string;
  backend: string;
  outcome: string;
  reason: string | null;
}
const attempts = async (server: TestServer, model: string) =>
  (await getJson<{ data: Attempt[] }>(`${server.url}/admin/models/compatibility?model=${encodeURIComponent(model)}&limit=1000`)).body.data.reverse();
const complete = (server: TestServer, model: string) =>
  getJson<{ error?: { code: string; message: string } }>(`${server.url}/v1/completions`, {
    method: "POST",
    headers: json,
    body: JSON.stringify({ model, prompt: "Once upon a time", max_tokens: 4 }),
  });

describe("backend fallback and quarantine", () => {
  let server: TestServer;
  let clear: () => void;
  before(async () => {
    clear = withFaults({ "fallback@llama.cpp": "abort", doomed: "exit" });
    server = await startTestServer({
      quarantine_after: 3,
      backends: { cpu_fallback: true },
      models: [
        { id: "fallback", path: story.path, context_size: 256 },
        { id: "doomed", path: story.path, context_size: 256 },
      ],
    });
  });
  after(async () => {
    await server?.stop();
    clear();
  });

  test("when the first backend fails, the load succeeds on the second and both attempts are recorded", async () => {
    const res = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ model: "fallback", prompt: "Once", max_tokens: 2 }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-lmx-backend"), "llama.cpp-cpu", "the response says which backend serves");
    assert.deepEqual(
      (await attempts(server, "fallback")).map((a) => [a.backend, a.outcome, a.reason]),
      [
        ["llama.cpp", "failure", "model_loader_crashed"],
        ["llama.cpp-cpu", "success", null],
      ],
    );
  });

  test("after a failed latest attempt the failing backend goes last", async () => {
    await getJson(`${server.url}/admin/models/unload`, { method: "POST", headers: json, body: JSON.stringify({ model_id: "fallback" }) });
    assert.equal((await complete(server, "fallback")).status, 200);
    const after = await attempts(server, "fallback");
    assert.deepEqual(after.at(-1)?.backend, "llama.cpp-cpu", "llama.cpp-cpu was tried first this time");
  });

  test("a model whose every backend keeps failing is quarantined and then refused fast with the reasons", async () => {
    for (let i = 0; i < 3; i++) {
      const failed = await complete(server, "doomed");
      assert.equal(failed.body.error?.code, "model_loader_crashed");
    }
    const started = Date.now();
    const refused = await complete(server, "doomed");
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error?.code, "model_quarantined");
    assert.match(refused.body.error?.message ?? "", /model_loader_crashed/);
    assert.ok(Date.now() - started < 500, "refused without starting a runner");
    const list = await getJson<{ data: Array<{ id: string; quarantined: boolean }> }>(`${server.url}/admin/models/available`);
    assert.equal(list.body.data.find((m) => m.id === "doomed")?.quarantined, true);
    const status = await getJson<{ quarantined: Array<{ model_id: string }> }>(`${server.url}/admin/status`);
    assert.ok(status.body.quarantined.some((q) => q.model_id === "doomed"));
    const released = await getJson<{ keys_released: number; quarantined: boolean }>(`${server.url}/admin/models/unquarantine`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ model_id: "doomed" }),
    });
    assert.equal(released.body.quarantined, false);
    assert.equal((await complete(server, "doomed")).body.error?.code, "model_loader_crashed", "tried again after unquarantine");
  });

  test("a probe tries each candidate in an isolated runner and recommends one", async () => {
    const probe = await getJson<{
      results: Array<{ backend: string; outcome: string; reason: string | null; canary_tokens_per_sec: number | null }>;
      recommended_backend: string | null;
    }>(`${server.url}/admin/models/probe`, { method: "POST", headers: json, body: JSON.stringify({ model_id: "fallback", timeout_sec: 20 }) });
    assert.equal(probe.status, 200);
    const byBackend = new Map(probe.body.results.map((r) => [r.backend, r]));
    assert.equal(byBackend.get("llama.cpp")?.outcome, "failure");
    assert.equal(byBackend.get("llama.cpp-cpu")?.outcome, "success");
    assert.ok((byBackend.get("llama.cpp-cpu")?.canary_tokens_per_sec ?? 0) > 0);
    assert.equal(probe.body.recommended_backend, "llama.cpp-cpu");
    const loaded = await getJson<{ data: Array<{ id: string }> }>(`${server.url}/admin/models/loaded`);
    assert.ok(!loaded.body.data.some((m) => m.id.startsWith("probe:")), "probe runners are stopped afterwards");
  });

  test("allow_unsupported_runtime tries a quarantined combination; without it, it is skipped", async () => {
    const probe = (allow: boolean) =>
      getJson<{ results: Array<{ backend: string; outcome: string; reason: string | null }> }>(`${server.url}/admin/models/probe`, {
        method: "POST",
        headers: json,
        body: JSON.stringify({ model_id: "fallback", timeout_sec: 20, allow_unsupported_runtime: allow }),
      });
    // llama.cpp has failed for "fallback" twice so far (a load and a probe): one more makes three
    const forced = await probe(true);
    assert.equal(forced.body.results.find((r) => r.backend === "llama.cpp")?.outcome, "failure");
    const skipped = await probe(false);
    const cpp = skipped.body.results.find((r) => r.backend === "llama.cpp");
    assert.deepEqual([cpp?.outcome, cpp?.reason], ["skipped", "model_quarantined"]);
    const cppFailures = async () => (await attempts(server, "fallback")).filter((a) => a.backend === "llama.cpp" && a.outcome === "failure").length;
    const failuresBefore = await cppFailures();
    await getJson(`${server.url}/admin/models/unload`, { method: "POST", headers: json, body: JSON.stringify({ model_id: "fallback" }) });
    const res = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ model: "fallback", prompt: "Once", max_tokens: 2 }),
    });
    assert.equal(res.headers.get("x-lmx-backend"), "llama.cpp-cpu");
    assert.equal(await cppFailures(), failuresBefore, "the quarantined llama.cpp runner was not started again");
    const last = (await attempts(server, "fallback")).at(-1);
    assert.deepEqual([last?.backend, last?.outcome], ["llama.cpp-cpu", "success"]);
  });
});

describe("canary", () => {
  test("a model with NaN weights loads but fails its canary: model_probe_failed, recorded", async () => {
    const nan = path.join(dir, "nan-weights.gguf");
    await writeNanWeightsCopy(story.path, nan);
    const server = await startTestServer({ models: [{ id: "nan", path: nan, context_size: 256 }] });
    try {
      const res = await complete(server, "nan");
      assert.equal(res.status, 422);
      assert.equal(res.body.error?.code, "model_probe_failed");
      assert.match(res.body.error?.message ?? "", /non-finite/);
      assert.equal((await attempts(server, "nan"))[0]?.reason, "model_probe_failed");
    } finally {
      await server.stop();
    }
  });
});

describe("runner death while serving", () => {
  test("kill -9 during 8 concurrent streams: every stream ends with an error, none hangs, reload works, model_crashed recorded", async () => {
    const server = await startTestServer({ models: [{ id: "c", path: chat.path, context_size: 2048, parallel: 8 }] });
    try {
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "x", maxRetries: 0 });
      await client.completions.create({ model: "c", prompt: "warm", max_tokens: 1 });
      const pid = (await getJson<{ data: Array<{ pid: number }> }>(`${server.url}/admin/models/loaded`)).body.data[0]!.pid;
      let streaming = 0;
      const streams = Array.from({ length: 8 }, async (_, i) => {
        const stream = await client.chat.completions.create({
          model: "c",
          messages: [{ role: "user", content: `story ${i}` }],
          max_tokens: 1900,
          stream: true,
        });
        let counted = false;
        try {
          for await (const chunk of stream) {
            if (!counted && chunk.choices[0]?.delta.content) {
              counted = true;
              streaming++;
            }
          }
          return "finished";
        } catch (error) {
          return error instanceof OpenAI.APIError ? "error-event" : `other: ${String(error)}`;
        }
      });
      await waitFor(() => streaming === 8, 15_000, "all 8 streams to produce text");
      process.kill(pid, "SIGKILL");
      const outcomes = await Promise.race([
        Promise.all(streams),
        new Promise<string[]>((_, reject) => setTimeout(() => reject(new Error("a stream hung")), 10_000)),
      ]);
      assert.deepEqual(outcomes, Array(8).fill("error-event"));
      assert.equal((await complete(server, "c")).status, 200);
      const recorded = await attempts(server, "c");
      assert.ok(
        recorded.some((a) => a.outcome === "failure" && a.reason === "model_crashed"),
        JSON.stringify(recorded),
      );
    } finally {
      await server.stop();
    }
  });
});

describe("state storage that fails", () => {
  test("state dir under a file (unwritable): the server starts, serves, and reports degraded storage", async () => {
    const blocker = path.join(dir, "not-a-dir");
    writeFileSync(blocker, "x");
    const server = await startTestServer({ state_dir: path.join(blocker, "state"), models: [{ id: "m", path: story.path, context_size: 256 }] });
    try {
      assert.equal((await complete(server, "m")).status, 200);
      const status = await getJson<{ storage: { degraded: boolean; file: string | null; problems: Array<{ error: string }> } }>(
        `${server.url}/admin/status`,
      );
      assert.equal(status.body.storage.degraded, true);
      assert.equal(status.body.storage.file, null);
      assert.equal((await attempts(server, "m")).length, 1, "attempts are still recorded, in memory");
    } finally {
      await server.stop();
    }
  });

  test("a full disk (a 256 KiB tmpfs filled up): writes fail, the server keeps serving and says so", async (t) => {
    const mountPoint = path.join(dir, "full");
    mkdirSync(mountPoint);
    const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", mountPoint]).status === 0;
    if (!mounted) {
      if (process.env["CI"]) assert.fail("CI must be able to mount a tmpfs (root) for the ENOSPC test");
      t.skip("cannot mount a tmpfs here (needs root)");
      return;
    }
    try {
      const server = await startTestServer({
        state_dir: mountPoint,
        models: [
          { id: "m", path: story.path, context_size: 256 },
          { id: "m2", path: story.path, context_size: 256 },
        ],
      });
      try {
        spawnSync("dd", ["if=/dev/zero", `of=${path.join(mountPoint, "filler")}`, "bs=4k"]);
        for (let i = 0; i < 40; i++) {
          await getJson(`${server.url}/admin/models/unquarantine`, { method: "POST", headers: json, body: JSON.stringify({ model_id: "m" }) });
        }
        assert.equal((await complete(server, "m")).status, 200);
        assert.equal((await complete(server, "m2")).status, 200);
        const status = await getJson<{ storage: { degraded: boolean; problems: Array<{ error: string }> } }>(`${server.url}/admin/status`);
        assert.equal(status.body.storage.degraded, true, JSON.stringify(status.body.storage));
        assert.ok(
          status.body.storage.problems.some((p) => /full|SQLITE_FULL|ENOSPC|disk/i.test(p.error)),
          JSON.stringify(status.body.storage.problems),
        );
        assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
      } finally {
        await server.stop();
      }
    } finally {
      execFileSync("umount", [mountPoint]);
    }
  });
});
