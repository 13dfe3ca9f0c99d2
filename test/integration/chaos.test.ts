/**
 * Chaos gate: 500+ consecutive forced loader failures of every kind against a real gateway process. The gateway
 * must never crash, every answer must carry the deterministic code for its fault, the registry must hold every
 * attempt, quarantine must engage after quarantine_after failures, and a healthy model must keep serving.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { writeNotGgufFile, writeTruncatedCopy } from "../../src/gguf/fixtures.js";
import { PROJECT_ROOT, testModel } from "../helpers/models.js";
import { getJson } from "../helpers/server.js";

const MODELS = 170; // × 3 failures each = 510 forced loader failures
const QUARANTINE_AFTER = 3;
const CONCURRENCY = 4;
type Fault = "abort" | "exit" | "hang" | "truncated" | "not_gguf";
const CYCLE: Fault[] = ["abort", "exit", "truncated", "abort", "exit", "not_gguf", "abort", "exit", "hang", "truncated", "not_gguf", "exit"];
const EXPECTED: Record<Fault, { code: string; status: number; message: RegExp }> = {
  abort: { code: "model_loader_crashed", status: 503, message: /SIGABRT/ },
  exit: { code: "model_loader_crashed", status: 503, message: /code 3/ },
  hang: { code: "model_load_timeout", status: 503, message: /loader_timeout_sec/ },
  truncated: { code: "model_file_invalid", status: 422, message: /truncated/ },
  not_gguf: { code: "model_file_invalid", status: 422, message: /GGUF/ },
};

const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-chaos-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("500+ forced loader failures: no gateway crash, deterministic codes, full registry, quarantine, healthy model served", async (t) => {
  const story = await testModel("stories260K.gguf");
  const healthy = await testModel("stories260K-chatml.gguf");
  const truncated = path.join(dir, "truncated.gguf");
  const notGguf = path.join(dir, "not-gguf.gguf");
  await writeTruncatedCopy(story.path, truncated, 0.6);
  await writeNotGgufFile(notGguf);
  const faults: Array<{ id: string; fault: Fault }> = Array.from({ length: MODELS }, (_, i) => ({
    id: `chaos-${i}`,
    fault: CYCLE[i % CYCLE.length]!,
  }));
  const lines = [
    "port: 0",
    `state_dir: ${JSON.stringify(path.join(dir, "state"))}`,
    "log_level: error",
    "loader_timeout_sec: 2",
    "auto_load: [healthy]",
    `quarantine_after: ${QUARANTINE_AFTER}`,
    "demo_model: false",
    "discovery: {hf_cache: false, lmstudio: false, ollama: false}",
    // the faults are aimed at node-llama-cpp runners: not the llama-server build "auto" finds in the user cache
    "backends: {llama_server: false}",
    "models:",
    `  - {id: healthy, path: ${JSON.stringify(healthy.path)}, parallel: 2, context_size: 256, loader_timeout_sec: 60}`,
  ];
  for (const { id, fault } of faults) {
    const file = fault === "truncated" ? truncated : fault === "not_gguf" ? notGguf : story.path;
    lines.push(`  - {id: ${id}, path: ${JSON.stringify(file)}, context_size: 256, parallel: 1}`);
  }
  const configFile = path.join(dir, "config.yaml");
  writeFileSync(configFile, lines.join("\n"));
  const load = Object.fromEntries(faults.filter((f) => ["abort", "exit", "hang"].includes(f.fault)).map((f) => [f.id, f.fault]));
  const gateway = spawn(process.execPath, [path.join(PROJECT_ROOT, "dist", "src", "cli", "main.js"), "serve", "--config", configFile], {
    env: { ...process.env, LMX_ENABLE_FAULT_INJECTION: "1", LMX_FAULT_INJECTION: JSON.stringify({ load }) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let crashed: string | null = null;
  gateway.stdout!.on("data", (c: Buffer) => (output = (output + c.toString()).slice(-20_000)));
  gateway.stderr!.on("data", (c: Buffer) => (output = (output + c.toString()).slice(-20_000)));
  gateway.on("exit", (code, signal) => (crashed ??= `gateway exited (code ${code}, signal ${signal}): ${output.slice(-2000)}`));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gateway did not start: ${output}`)), 30_000);
      const check = () => {
        const match = /listening on (http:\/\/\S+)/.exec(output);
        if (match?.[1]) {
          clearTimeout(timer);
          resolve(match[1]);
        } else if (!crashed) setTimeout(check, 50);
      };
      check();
    });
    const ready = Date.now() + 60_000;
    while ((await fetch(`${url}/readyz`)).status !== 200 && Date.now() < ready) await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    const post = (model: string) =>
      getJson<{ error?: { code: string; message: string } }>(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model, prompt: "Once upon a time", max_tokens: 2 }),
      });

    // the healthy model is served the whole time
    let healthyOk = 0;
    const healthyErrors: string[] = [];
    let chaosRunning = true;
    const healthyLoop = (async () => {
      while (chaosRunning) {
        const res = await post("healthy");
        if (res.status === 200) healthyOk++;
        else healthyErrors.push(`${res.status} ${JSON.stringify(res.body)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    const wrong: string[] = [];
    const queue = [...faults];
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const expected = EXPECTED[next.fault];
        for (let attempt = 1; attempt <= QUARANTINE_AFTER; attempt++) {
          const res = await post(next.id);
          if (res.status !== expected.status || res.body.error?.code !== expected.code || !expected.message.test(res.body.error?.message ?? "")) {
            wrong.push(`${next.id} (${next.fault}) attempt ${attempt}: ${res.status} ${JSON.stringify(res.body)}`);
          }
        }
        const refused = await post(next.id);
        if (refused.status !== 503 || refused.body.error?.code !== "model_quarantined") {
          wrong.push(`${next.id} (${next.fault}) after ${QUARANTINE_AFTER} failures: ${refused.status} ${JSON.stringify(refused.body)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    chaosRunning = false;
    await healthyLoop;
    const seconds = (Date.now() - started) / 1000;
    t.diagnostic(`${MODELS * QUARANTINE_AFTER} forced failures in ${seconds.toFixed(1)} s; healthy model answered ${healthyOk} requests meanwhile`);

    assert.equal(crashed, null, crashed ?? "");
    assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} answers had the wrong code`);
    assert.deepEqual(healthyErrors.slice(0, 5), []);
    assert.ok(healthyOk > 10);
    const registry = await getJson<{ total: number; data: Array<{ outcome: string; reason: string }> }>(
      `${url}/admin/models/compatibility?outcome=failure&limit=10000`,
    );
    const failures = registry.body.data.filter((r) => r.outcome === "failure");
    assert.equal(failures.length, MODELS * QUARANTINE_AFTER, "every forced failure is in the registry");
    const status = await getJson<{ quarantined: unknown[] }>(`${url}/admin/status`);
    assert.equal(status.body.quarantined.length, MODELS);
    assert.equal((await post("healthy")).status, 200, "still serving afterwards");
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    assert.ok(seconds < 300, "the gate stays under 5 minutes");
  } finally {
    gateway.kill("SIGTERM");
    await new Promise((r) => (gateway.exitCode !== null ? r(null) : gateway.once("exit", r)));
  }
});
