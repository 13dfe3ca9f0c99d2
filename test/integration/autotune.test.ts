/**
 * Autotune and presets against real runners (llama-server on the tiny stories260K model, small workloads so a
 * search takes seconds): where each setting comes from at load, a candidate the engine rejects (a quantized V
 * cache without flash attention), rollback, dry runs, 409 for a second search, and a search next to a model
 * that serves requests, which it never evicts (when a candidate does not fit, it is skipped instead).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { NO_LLAMA_SERVER, testLlamaServerBinary } from "../helpers/llama-server.js";
import { testModel, type TestModel } from "../helpers/models.js";
import { getJson, showLogsOnFailure, startTestServer, type TestServer } from "../helpers/server.js";

const binary = testLlamaServerBinary();
const skip = binary ? false : NO_LLAMA_SERVER;
const json = { "content-type": "application/json" };
/** Two streams, tiny prompts and answers: a candidate is measured in well under a second. */
const TINY = { name: "tiny", concurrency: [2], prompt_tokens: 16, max_tokens: 8, requests: 2 };

interface Candidate {
  n: number;
  rung: number;
  label: string;
  settings: Record<string, unknown>;
  outcome: "ok" | "failed" | "skipped";
  reason: string | null;
  score: number | null;
}
interface Job {
  id: string;
  status: string;
  candidates: Candidate[];
  result: { profile_id: number | null; applied: boolean; winner: Candidate | null; settings: Record<string, unknown> } | null;
  error: { code: string; message: string } | null;
}
interface Profile {
  id: number;
  status: string;
  settings: Record<string, unknown>;
}
interface LoadAnswer {
  settings: Record<string, unknown>;
  settings_source: Record<string, string>;
  info: { parallel: number; threads: number; batch_size: number };
}

async function post<T>(server: TestServer, path: string, body: unknown): Promise<{ status: number; body: T }> {
  return getJson<T>(`${server.url}${path}`, { method: "POST", headers: json, body: JSON.stringify(body) });
}

async function autotune(server: TestServer, body: Record<string, unknown>): Promise<Job> {
  const answer = await post<Job>(server, "/admin/models/autotune", { workload: TINY, budget_sec: 120, wait: true, ...body });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.equal(answer.body.status, "completed", JSON.stringify(answer.body.error));
  return answer.body;
}

async function loaded(server: TestServer, id: string): Promise<{ pid: number; settings_source: Record<string, string>; parallel: number }> {
  const list = await getJson<{ data: Array<{ id: string; pid: number; settings_source: Record<string, string>; parallel: number }> }>(
    `${server.url}/admin/models/loaded`,
  );
  const entry = list.body.data.find((m) => m.id === id);
  assert.ok(entry, `${id} is loaded`);
  return entry;
}

describe("autotune and presets", { skip, timeout: 240_000 }, () => {
  let story: TestModel;
  let chat: TestModel;
  let server: TestServer;

  before(async () => {
    story = await testModel("stories260K.gguf");
    chat = await testModel("stories260K-chatml.gguf");
    server = await startTestServer({
      backends: { llama_server: binary!, cpu_fallback: false },
      defaults: { batch_size: 256, flash_attention: false },
      presets: { wide: { parallel: 3, batch_size: 128, threads: 1 } },
      models: [
        { id: "prec", path: story.path, context_size: 256, parallel: 2, threads: 1, preset: "wide" },
        { id: "story", path: story.path, context_size: 256, parallel: 2, threads: 1 },
        { id: "chat", path: chat.path, context_size: 256, parallel: 2, threads: 1 },
      ],
    });
  });
  after(async () => {
    await server?.stop();
  });

  test("GET /admin/presets lists the built-ins and the config's own", async () => {
    const answer = await getJson<{ data: Array<{ name: string; built_in: boolean; settings: Record<string, unknown> }> }>(
      `${server.url}/admin/presets`,
    );
    const names = answer.body.data.map((p) => p.name);
    for (const name of ["fast-chat", "long-context", "batch", "low-memory", "wide"]) assert.ok(names.includes(name), name);
    assert.deepEqual(answer.body.data.find((p) => p.name === "wide")?.settings, { parallel: 3, batch_size: 128, threads: 1 });
  });

  test("precedence: each level overrides the one below and the reported source says which", () =>
    showLogsOnFailure(server, async () => {
      // defaults < model entry < preset
      const first = await post<LoadAnswer>(server, "/admin/models/load", { model_id: "prec" });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.equal(first.body.settings_source["flash_attention"], "defaults");
      assert.equal(first.body.settings_source["context_size"], "model");
      assert.equal(first.body.settings_source["parallel"], "preset:wide");
      assert.equal(first.body.settings_source["batch_size"], "preset:wide");
      assert.equal(first.body.settings_source["cache_type_k"], "built-in");
      assert.equal(first.body.info.parallel, 3);
      assert.equal(first.body.info.batch_size, 128);

      // a tuned profile beats the preset (threads)
      const job = await autotune(server, { model_id: "prec", axes: ["threads"] });
      const profileId = job.result!.profile_id!;
      assert.ok(profileId > 0);
      assert.ok("threads" in job.result!.settings);
      const tuned = await post<LoadAnswer>(server, "/admin/models/load", { model_id: "prec" });
      assert.equal(tuned.body.settings_source["threads"], `profile:${profileId}`);
      assert.equal(tuned.body.settings["threads"], job.result!.settings["threads"]);
      assert.equal(tuned.body.settings_source["parallel"], "preset:wide");

      // the load's own settings beat the profile; the load's preset replaces the entry's
      const explicit = await post<LoadAnswer>(server, "/admin/models/load", {
        model_id: "prec",
        preset: "batch",
        settings: { threads: 1, parallel: 5 },
      });
      assert.equal(explicit.status, 200, JSON.stringify(explicit.body));
      assert.equal(explicit.body.settings_source["threads"], "load");
      assert.equal(explicit.body.settings_source["parallel"], "load");
      assert.equal(explicit.body.settings_source["batch_size"], "preset:batch");
      assert.equal(explicit.body.settings_source["ubatch_size"], "preset:batch");
      assert.equal(explicit.body.info.parallel, 5);
      assert.equal(explicit.body.info.batch_size, 1024);
      const view = await loaded(server, "prec");
      assert.deepEqual(view.settings_source, explicit.body.settings_source);

      const unknown = await post<{ error: { param: string } }>(server, "/admin/models/load", { model_id: "prec", preset: "nope" });
      assert.equal(unknown.status, 400);
      assert.equal(unknown.body.error.param, "preset");
      await post(server, "/admin/models/unload", { model_id: "prec" });
    }));

  test("a candidate the engine rejects is recorded in the compatibility registry and the search completes", () =>
    showLogsOnFailure(server, async () => {
      // llama-server refuses a quantized V cache without flash attention: that runner exits while loading
      const job = await autotune(server, {
        model_id: "story",
        axes: [],
        candidates: [{ cache_type_v: "q4_0", flash_attention: false }],
        dry_run: true,
      });
      const bad = job.candidates.find((c) => c.settings["cache_type_v"] === "q4_0");
      assert.ok(bad, JSON.stringify(job.candidates));
      assert.equal(bad.outcome, "failed");
      // its log says "quantized V cache requires flash_attn"; the reason carries the last lines: context creation failed
      assert.match(bad.reason ?? "", /llama-server exited with code 1 while loading .*failed to create context/s);
      assert.ok(job.result?.winner, "the current settings still won");
      assert.equal(job.result.winner.settings["cache_type_v"], undefined);
      const records = await getJson<{ data: Array<{ outcome: string; metadata: Record<string, unknown> }> }>(
        `${server.url}/admin/models/compatibility?model=story&outcome=failure`,
      );
      const trial = records.body.data.find((r) => r.metadata["trial"] === "autotune");
      assert.ok(trial, JSON.stringify(records.body.data));
      assert.deepEqual(trial.metadata["settings"], { cache_type_v: "q4_0", flash_attention: false });
      // a candidate's failure says nothing about the model: it loads as before, not quarantined
      const load = await post<LoadAnswer>(server, "/admin/models/load", { model_id: "story" });
      assert.equal(load.status, 200, JSON.stringify(load.body));
      await post(server, "/admin/models/unload", { model_id: "story" });
    }));

  test("dry_run records without applying; rollback restores the previous profile, then none", () =>
    showLogsOnFailure(server, async () => {
      const path = "/admin/models/story/autotune";
      const first = await autotune(server, { model_id: "story", axes: ["threads"] });
      const second = await autotune(server, { model_id: "story", axes: ["threads"] });
      const dry = await autotune(server, { model_id: "story", axes: ["threads"], dry_run: true });
      assert.equal(dry.result!.applied, false);
      let state = await getJson<{ current: Profile | null; history: Profile[] }>(`${server.url}${path}`);
      assert.equal(state.body.current?.id, second.result!.profile_id, "the dry run did not replace the current profile");
      assert.deepEqual(
        state.body.history.filter((p) => p.id >= first.result!.profile_id!).map((p) => [p.id, p.status]),
        [
          [dry.result!.profile_id, "dry_run"],
          [second.result!.profile_id, "applied"],
          [first.result!.profile_id, "applied"],
        ],
      );
      const back = await post<{ rolled_back: number; current: Profile | null }>(server, `${path}/rollback`, {});
      assert.equal(back.status, 200);
      assert.equal(back.body.rolled_back, second.result!.profile_id);
      assert.equal(back.body.current?.id, first.result!.profile_id);
      state = await getJson(`${server.url}${path}`);
      assert.equal(state.body.current?.id, first.result!.profile_id);
      const load = await post<LoadAnswer>(server, "/admin/models/load", { model_id: "story" });
      assert.equal(load.body.settings_source["threads"], `profile:${first.result!.profile_id}`);
      const none = await post<{ current: Profile | null }>(server, `${path}/rollback`, {});
      assert.equal(none.body.current, null);
      const nothing = await post<{ error: { code: string } }>(server, `${path}/rollback`, {});
      assert.equal(nothing.status, 404);
      await post(server, "/admin/models/unload", { model_id: "story" });
    }));

  test("a second autotune while one runs gets 409 autotune_in_progress", () =>
    showLogsOnFailure(server, async () => {
      const started = await post<Job & { poll: string }>(server, "/admin/models/autotune", {
        model_id: "story",
        workload: TINY,
        axes: ["threads"],
        dry_run: true,
      });
      assert.equal(started.status, 202);
      const second = await post<{ error: { code: string } }>(server, "/admin/models/autotune", { model_id: "chat", workload: TINY, dry_run: true });
      assert.equal(second.status, 409);
      assert.equal(second.body.error.code, "autotune_in_progress");
      let job: Job = started.body;
      while (job.status === "running") {
        await new Promise((r) => setTimeout(r, 200));
        job = (await getJson<Job>(`${server.url}${started.body.poll}`)).body;
      }
      assert.equal(job.status, "completed");
    }));

  test("autotune while another model serves requests never evicts it", () =>
    showLogsOnFailure(server, async () => {
      const load = await post<LoadAnswer>(server, "/admin/models/load", { model_id: "chat" });
      assert.equal(load.status, 200);
      const before = await loaded(server, "chat");
      let served = 0;
      let failed = 0;
      let stop = false;
      const traffic = (async () => {
        while (!stop) {
          const answer = await post(server, "/v1/completions", { model: "chat", prompt: "Once upon a time", max_tokens: 4 });
          if (answer.status === 200) served++;
          else failed++;
        }
      })();
      try {
        await autotune(server, { model_id: "story", axes: ["threads"], dry_run: true });
      } finally {
        stop = true;
        await traffic;
      }
      const after = await loaded(server, "chat");
      assert.equal(after.pid, before.pid, "the serving runner is the same process");
      assert.ok(served > 0);
      assert.equal(failed, 0);
      await post(server, "/admin/models/unload", { model_id: "chat" });
    }));
});

describe("autotune under a memory budget with no room for a candidate", { skip, timeout: 120_000 }, () => {
  test("every candidate is skipped with the reason; the serving model stays", async () => {
    const story = await testModel("stories260K.gguf");
    const chat = await testModel("stories260K-chatml.gguf");
    const config = {
      backends: { llama_server: binary!, cpu_fallback: false },
      models: [
        { id: "story", path: story.path, context_size: 256, parallel: 2, threads: 1 },
        { id: "chat", path: chat.path, context_size: 256, parallel: 2, threads: 1 },
      ],
    };
    // what one runner of this model takes in the budget, measured on a server without a budget
    let reserved: number;
    const probe = await startTestServer(config);
    try {
      await post(probe, "/admin/models/load", { model_id: "chat" });
      reserved = (await getJson<{ data: Array<{ reserved_bytes: number }> }>(`${probe.url}/admin/models/loaded`)).body.data[0]!.reserved_bytes;
      assert.ok(reserved > 0);
    } finally {
      await probe.stop();
    }
    const server = await startTestServer({ ...config, memory: { budget_bytes: Math.round(reserved * 1.3), eviction: true } });
    try {
      await showLogsOnFailure(server, async () => {
        assert.equal((await post(server, "/admin/models/load", { model_id: "chat" })).status, 200);
        const before = await loaded(server, "chat");
        const job = await autotune(server, { model_id: "story", axes: ["threads"] });
        assert.ok(job.candidates.length > 0);
        for (const c of job.candidates) {
          assert.equal(c.outcome, "skipped", JSON.stringify(c));
          assert.match(c.reason ?? "", /never evicts/);
        }
        assert.equal(job.result?.winner, null);
        assert.equal(job.result?.profile_id, null);
        const after = await loaded(server, "chat");
        assert.equal(after.pid, before.pid);
      });
    } finally {
      await server.stop();
    }
  });
});
