/**
 * Agent runs on a real runner (docs/agents.md): the operators' runbook calls verbatim (curl + jq on port 1234),
 * the other strategies, events, bad input, and 20 runs at once next to interactive chat requests. The gateway
 * kill -9 case is in agent-runs-restart.test.ts (it needs a gateway in its own process).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import path from "node:path";
import { PROJECT_ROOT, testModel } from "../helpers/models.js";
import { getJson, showLogsOnFailure, startTestServer, waitFor, type TestServer } from "../helpers/server.js";

const run = promisify(execFile);
const BASE = "http://127.0.0.1:1234";

/** The runbook of issue 16, split where the test waits between calls; each line is sent as written. */
const RUNBOOK_PARALLEL = `RUN_ID=$(curl -s -X POST http://127.0.0.1:1234/v1/agents/runs -H "Content-Type: application/json" \\
  -H "x-priority: interactive" -H "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" \\
  -d '{"request":{"strategy":"parallel_map","prompt":"Summarize release risks","roles":["researcher","reviewer"],
       "model":"auto","max_parallelism":2,"timeout_sec":90},"metadata":{"source":"workflow-10"}}' | jq -r '.id')
echo "$RUN_ID"`;
const RUNBOOK_GET = `curl -s "http://127.0.0.1:1234/v1/agents/runs/$RUN_ID"`;
const RUNBOOK_LIST = `curl -s "http://127.0.0.1:1234/v1/agents/runs?limit=20&status=completed"`;
const RUNBOOK_SLOW = `SLOW_RUN_ID=$(curl -s -X POST http://127.0.0.1:1234/v1/agents/runs -H "Content-Type: application/json" \\
  -d '{"agent":"default","input":{"strategy":"handoff","prompt":"Long planning chain","roles":["planner","coder","reviewer"],"timeout_sec":300}}' | jq -r '.id')
echo "$SLOW_RUN_ID"`;
const RUNBOOK_CANCEL = `curl -s -X POST "http://127.0.0.1:1234/v1/agents/runs/$SLOW_RUN_ID/cancel"`;

async function bash(script: string, env: Record<string, string> = {}): Promise<string> {
  const { stdout } = await run("bash", ["-c", script], { env: { ...process.env, ...env }, timeout: 30_000 });
  return stdout.trim();
}

interface Step {
  index: number;
  kind: string;
  role: string;
  status: string;
  output: string | null;
  traceparent: string;
  usage: { prompt_tokens: number; completion_tokens: number };
}
interface Run {
  id: string;
  object: string;
  status: string;
  strategy: string;
  reason: string | null;
  output: string | null;
  decision: Record<string, unknown> | null;
  metadata: Record<string, unknown>;
  priority: string;
  trace_id: string;
  resolved_model: string | null;
  steps?: Step[];
}
interface ErrorBody {
  error: { code: string; param: string | null; type: string; message: string };
}
interface Stats {
  requests_active: number;
  generated_tokens: number;
}

const LONG = { max_tokens: 1900, ignore_eos: true };

describe("agent runs", { timeout: 600_000 }, () => {
  let server: TestServer;

  before(async () => {
    const model = await testModel("stories260K-chatml.gguf");
    server = await startTestServer({
      port: 1234,
      log_level: "info",
      models: [{ id: "chat", path: model.path, parallel: 4, context_size: 2048, threads: 1 }],
      auto_load: ["chat"],
      agents: {
        step_max_tokens: 8,
        // the slow chain: planner and coder generate until stopped, so a cancel lands mid-step
        roles: {
          planner: { system_prompt: "You plan.", sampling: LONG },
          coder: { system_prompt: "You code.", sampling: LONG },
        },
      },
    });
    await waitFor(
      async () => (await getJson<{ data: unknown[] }>(`${server.url}/admin/models/loaded`)).body.data.length > 0,
      60_000,
      "the model to load",
    );
  });
  after(async () => {
    await server?.stop();
  });

  const get = async (id: string) => (await getJson<Run>(`${BASE}/v1/agents/runs/${id}`)).body;
  const finished = async (id: string, timeoutMs = 120_000) => {
    await waitFor(async () => !["queued", "running"].includes((await get(id)).status), timeoutMs, `run ${id} to end`);
    return get(id);
  };
  const statsOf = async () => {
    const loaded = await getJson<{ data: Array<{ id: string; running: number; parallel: number; stats: Stats }> }>(`${BASE}/admin/models/loaded`);
    return loaded.body.data.find((m) => m.id === "chat")!;
  };
  const create = (body: unknown, headers: Record<string, string> = {}) =>
    getJson<Run & ErrorBody>(`${BASE}/v1/agents/runs`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });

  test("the runbook: parallel_map completes with both roles' answers and a reduced one", () =>
    showLogsOnFailure(server, async () => {
      const runId = await bash(RUNBOOK_PARALLEL);
      assert.match(runId, /^run_[0-9a-f]{24}$/);
      const early = JSON.parse(await bash(RUNBOOK_GET, { RUN_ID: runId })) as Run;
      assert.equal(early.id, runId);
      assert.ok(["queued", "running", "completed"].includes(early.status), early.status);
      const done = await finished(runId);
      assert.equal(done.status, "completed", JSON.stringify(done));
      assert.deepEqual(done.metadata, { source: "workflow-10" });
      assert.equal(done.priority, "interactive");
      assert.equal(done.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
      assert.equal(done.resolved_model, "chat");
      const steps = done.steps!;
      assert.deepEqual(
        steps.map((s) => [s.kind, s.role, s.status]),
        [
          ["answer", steps[0]!.role, "completed"],
          ["answer", steps[1]!.role, "completed"],
          ["reduce", "summarizer", "completed"],
        ],
      );
      assert.deepEqual(
        steps
          .slice(0, 2)
          .map((s) => s.role)
          .sort(),
        ["researcher", "reviewer"],
      );
      for (const step of steps) {
        assert.ok(step.usage.completion_tokens > 0, `step ${step.index} generated`);
        // every step is a span of the caller's trace
        assert.match(step.traceparent, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
      }
      assert.equal(done.output, steps[2]!.output);
      // the gateway's lines about the run name its trace
      const started = server
        .logs()
        .split("\n")
        .filter((line) => line.includes('"msg":"agent run started"') && line.includes(runId));
      assert.equal(started.length, 1);
      assert.match(started[0]!, /"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"/);
      const list = JSON.parse(await bash(RUNBOOK_LIST)) as { object: string; data: Run[] };
      assert.equal(list.object, "list");
      assert.ok(list.data.some((r) => r.id === runId));
      assert.ok(list.data.every((r) => r.status === "completed"));
      // the steps went through the server's metrics like any chat request
      const metrics = await (await fetch(`${BASE}/metrics`)).text();
      assert.match(metrics, /lmx:requests_total\{[^}]*model="chat"[^}]*status="200"[^}]*\} [1-9]/);
    }));

  test("the runbook: a handoff cancelled mid-step is cancelled at once and the runner stops generating", () =>
    showLogsOnFailure(server, async () => {
      const before = (await statsOf()).stats;
      const slowId = await bash(RUNBOOK_SLOW);
      assert.match(slowId, /^run_/);
      // mid-step: the planner's generation is running in the runner
      await waitFor(async () => (await statsOf()).stats.requests_active > 0, 30_000, "the planner to generate");
      const started = performance.now();
      const cancelled = JSON.parse(await bash(RUNBOOK_CANCEL, { SLOW_RUN_ID: slowId })) as Run;
      const answeredMs = performance.now() - started;
      assert.equal(cancelled.status, "cancelled");
      assert.equal(cancelled.reason, "cancelled");
      assert.equal((await get(slowId)).status, "cancelled");
      const steps = (await get(slowId)).steps!;
      assert.equal(steps.length, 1, "the coder and reviewer never started");
      assert.deepEqual([steps[0]!.role, steps[0]!.status], ["planner", "cancelled"]);
      await waitFor(async () => (await statsOf()).stats.requests_active === 0, 30_000, "the runner to stop generating");
      const stopped = (await statsOf()).stats;
      await new Promise((r) => setTimeout(r, 500));
      const later = (await statsOf()).stats;
      assert.equal(later.generated_tokens, stopped.generated_tokens, "no token generated after the cancel");
      assert.ok(stopped.generated_tokens - before.generated_tokens < 1900, "the planner's generation was cut short");
      // a second cancel: the run is over
      const again = await getJson<ErrorBody>(`${BASE}/v1/agents/runs/${slowId}/cancel`, { method: "POST" });
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, "agent_run_finished");
      console.log(`# cancel answered in ${answeredMs.toFixed(0)} ms (curl included)`);
    }));

  test("router: the classifier's grammar-constrained choice picks the role that answers", async () => {
    const res = await create({ request: { strategy: "router", prompt: "Write a sort function", roles: ["coder", "reviewer"], max_tokens: 4 } });
    assert.equal(res.status, 201);
    const done = await finished(res.body.id);
    assert.equal(done.status, "completed", JSON.stringify(done));
    const chosen = done.decision?.["role"];
    assert.ok(chosen === "coder" || chosen === "reviewer", String(chosen));
    assert.deepEqual(
      done.steps!.map((s) => [s.kind, s.role]),
      [
        ["route", "classifier"],
        ["answer", chosen],
      ],
    );
    assert.deepEqual(Object.keys(JSON.parse(done.steps![0]!.output!) as object), ["role"]);
  });

  test("vote: several answers, then a judge picks one; without a judge the majority wins", async () => {
    const judged = await finished(
      (
        await create({
          request: { strategy: "vote", prompt: "Name a colour", roles: ["researcher", "reviewer", "planner"], judge: "judge", max_tokens: 4 },
        })
      ).body.id,
    );
    assert.equal(judged.status, "completed", JSON.stringify(judged));
    assert.equal(judged.decision?.["method"], "judge");
    const winner = judged.decision?.["winner"] as number;
    assert.equal(judged.output, judged.steps![winner]!.output);
    assert.deepEqual(
      judged.steps!.map((s) => s.kind),
      ["answer", "answer", "answer", "judge"],
    );

    const majority = await finished(
      (await create({ request: { strategy: "vote", prompt: "Name a colour", roles: ["researcher"], samples: 3 } })).body.id,
    );
    assert.equal(majority.status, "completed");
    assert.equal(majority.decision?.["method"], "majority");
    assert.equal(majority.steps!.length, 3);
  });

  test("events: a follower gets step and terminal events, replayed for a run that already ended", async () => {
    const res = await create({ request: { strategy: "handoff", prompt: "Plan", roles: ["researcher", "reviewer"] } });
    const live = await (await fetch(`${BASE}/v1/agents/runs/${res.body.id}/events`)).text();
    const types = (text: string) => [...text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]!).filter((t) => t !== "step.delta");
    assert.deepEqual(types(live), ["run.queued", "run.started", "step.started", "step.finished", "step.started", "step.finished", "run.completed"]);
    const replay = await (await fetch(`${BASE}/v1/agents/runs/${res.body.id}/events`)).text();
    assert.deepEqual(types(replay), types(live));
  });

  test("timeout_sec ends a run as timed_out", async () => {
    const res = await create({ request: { strategy: "handoff", prompt: "Plan", roles: ["planner"], timeout_sec: 0.3 } });
    const done = await finished(res.body.id);
    assert.equal(done.status, "timed_out");
    assert.equal(done.reason, "timeout");
    assert.equal(done.steps![0]!.status, "cancelled");
  });

  test("bad input answers OpenAI's error shape naming the parameter", async () => {
    const spec = { strategy: "parallel_map", prompt: "p", roles: ["researcher", "reviewer"] };
    const cases: Array<[unknown, number, string, string | null]> = [
      [{ request: { ...spec, strategy: "swarm" } }, 400, "invalid_value", "request.strategy"],
      [{ request: { ...spec, roles: ["researcher", "astrologer"] } }, 400, "invalid_value", "request.roles[1]"],
      [{ agent: "default", input: { ...spec, roles: ["astrologer"] } }, 400, "invalid_value", "input.roles[0]"],
      [{ request: { ...spec, max_parallelism: 0 } }, 400, "invalid_value", "request.max_parallelism"],
      [{ request: { ...spec, max_parallelism: 10_000 } }, 400, "invalid_value", "request.max_parallelism"],
      [{ request: { ...spec, timeout_sec: -1 } }, 400, "invalid_value", "request.timeout_sec"],
      [{ request: { ...spec, model: "no-such-model" } }, 404, "model_not_found", "request.model"],
      [{ request: spec, extra: 1 }, 400, "unknown_parameter", "extra"],
    ];
    for (const [body, status, code, param] of cases) {
      const res = await create(body);
      assert.equal(res.status, status, JSON.stringify(body));
      assert.equal(res.body.error.code, code, JSON.stringify(res.body));
      assert.equal(res.body.error.param, param, JSON.stringify(res.body));
      assert.equal(res.body.error.type, "invalid_request_error");
    }
    const priority = await create({ request: spec }, { "x-priority": "urgent" });
    assert.equal(priority.status, 400);
    assert.equal(priority.body.error.param, "x-priority");
    for (const path of ["/v1/agents/runs/run_nope", "/v1/agents/runs/run_nope/events"]) {
      const res = await getJson<ErrorBody>(`${BASE}${path}`);
      assert.equal(res.status, 404);
      assert.equal(res.body.error.code, "agent_run_not_found");
    }
    const cancel = await getJson<ErrorBody>(`${BASE}/v1/agents/runs/run_nope/cancel`, { method: "POST" });
    assert.equal(cancel.status, 404);
    const done = await finished((await create({ request: { ...spec, roles: ["researcher"] } })).body.id);
    const late = await getJson<ErrorBody>(`${BASE}/v1/agents/runs/${done.id}/cancel`, { method: "POST" });
    assert.equal(late.status, 409);
    assert.equal(late.body.error.code, "agent_run_finished");
    const badList = await getJson<ErrorBody>(`${BASE}/v1/agents/runs?status=sleeping`);
    assert.equal(badList.status, 400);
    assert.equal(badList.body.error.param, "status");
  });

  test("lmx agents: run --follow prints the steps and the output; ls, show, and cancel of an ended run", async () => {
    const CLI = path.join(PROJECT_ROOT, "dist", "src", "cli", "main.js");
    const cli = (...args: string[]) =>
      run(process.execPath, [CLI, ...args, "--url", BASE], { timeout: 60_000, env: { ...process.env, NO_COLOR: "1" } });
    const followed = await cli("agents", "run", "Plan a release", "-s", "handoff", "-r", "researcher,reviewer", "--follow");
    assert.match(followed.stdout, /step 0 · researcher[\s\S]*step 1 · reviewer[\s\S]*output/);
    const id = /run (run_[0-9a-f]+) completed/.exec(followed.stderr)?.[1];
    assert.ok(id, followed.stderr);
    const listed = JSON.parse((await cli("agents", "ls", "--status", "completed", "--json")).stdout) as { data: Run[] };
    assert.ok(listed.data.some((r) => r.id === id));
    const shown = await cli("agents", "show", id);
    assert.match(shown.stdout, /status\s+completed/);
    assert.match(shown.stdout, /step 1 handoff · reviewer completed/);
    await assert.rejects(cli("agents", "cancel", id), (error: { code: number; stderr: string }) => {
      assert.equal(error.code, 1);
      assert.match(error.stderr, /already ended/);
      return true;
    });
  });

  test("20 runs at once, max_parallelism 2 each, on 4 slots: all finish, slots never exceeded, interactive requests keep their priority", () =>
    showLogsOnFailure(server, async () => {
      const waits = async () => {
        const text = await (await fetch(`${BASE}/metrics`)).text();
        const value = (name: string, priority: string) =>
          Number(new RegExp(`^lmx:queue_wait_seconds_${name}\\{priority="${priority}"\\} (\\S+)$`, "m").exec(text)?.[1] ?? "0");
        return {
          batch: { sum: value("sum", "batch"), count: value("count", "batch") },
          interactive: { sum: value("sum", "interactive"), count: value("count", "interactive") },
        };
      };
      const before = await waits();
      const ids = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const res = await create(
            { request: { strategy: "parallel_map", prompt: "Risks?", roles: ["researcher", "reviewer"], max_parallelism: 2, max_tokens: 24 } },
            { "x-priority": "batch" },
          );
          assert.equal(res.status, 201, JSON.stringify(res.body));
          return res.body.id;
        }),
      );
      let busiest = 0;
      let busiestRunner = 0;
      let done = false;
      const sampler = (async () => {
        while (!done) {
          const model = await statsOf();
          busiest = Math.max(busiest, model.running);
          busiestRunner = Math.max(busiestRunner, model.stats.requests_active);
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      let interactive = 0;
      const chats = (async () => {
        while (!done) {
          const res = await fetch(`${BASE}/v1/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json", "x-priority": "interactive" },
            body: JSON.stringify({ model: "chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 4 }),
          });
          assert.equal(res.status, 200);
          await res.text();
          interactive++;
        }
      })();
      const runs = await Promise.all(ids.map((id) => finished(id, 300_000)));
      done = true;
      await Promise.all([sampler, chats]);
      assert.deepEqual(
        runs.map((r) => r.status),
        runs.map(() => "completed"),
      );
      assert.ok(runs.every((r) => r.steps!.length === 3));
      assert.ok(busiest <= 4, `the scheduler ran ${busiest} at once`);
      assert.ok(busiestRunner <= 4, `the runner ran ${busiestRunner} at once`);
      assert.ok(busiest > 0);
      const afterWaits = await waits();
      const batchCount = afterWaits.batch.count - before.batch.count;
      const interactiveCount = afterWaits.interactive.count - before.interactive.count;
      assert.ok(batchCount >= 60, `every step was admitted as batch (${batchCount})`);
      assert.ok(interactiveCount >= 1 && interactive >= 1);
      const batchMean = (afterWaits.batch.sum - before.batch.sum) / batchCount;
      const interactiveMean = (afterWaits.interactive.sum - before.interactive.sum) / interactiveCount;
      console.log(
        `# ${interactive} interactive requests; mean queue wait: interactive ${interactiveMean.toFixed(4)} s, batch steps ${batchMean.toFixed(4)} s`,
      );
      assert.ok(interactiveMean < batchMean, `interactive requests waited ${interactiveMean} s on average, batch steps ${batchMean} s`);
    }));
});
