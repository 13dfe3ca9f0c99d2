/**
 * Clients that hang up must never change anyone else's answer. A model with 2 sequences; each trial starts 2
 * streams, queues 4 greedy requests behind them, and aborts the streams after a few chunks: the greedy answers
 * must equal the answer given with no load, every time. Then a storm of streams aborted at random moments:
 * no client that kept reading may see a `model_crashed` error (the runner never died).
 * Both engines: node-llama-cpp in the runner, and llama-server (where a binary was built).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { NO_LLAMA_SERVER, testLlamaServerBinary } from "../helpers/llama-server.js";
import { testModel } from "../helpers/models.js";
import { getJson, startTestServer, waitFor, type TestServer } from "../helpers/server.js";

const TRIALS = Number(process.env["LMX_TEST_ABORT_TRIALS"] ?? 100);
const STORM = Number(process.env["LMX_TEST_ABORT_STORM"] ?? 300);
const STORM_CONCURRENCY = 24;
const GREEDY_MAX_TOKENS = 20;
const STORM_MAX_TOKENS = 24;
const GREEDY_PROMPT = "Tell me a story about a little dog.";

const llamaServer = testLlamaServerBinary();
const engines = [
  { name: "node-llama-cpp", backends: { llama_server: false as const, cpu_fallback: false }, skip: false as const },
  {
    name: "llama-server",
    backends: { llama_server: llamaServer ?? "missing", cpu_fallback: false },
    skip: llamaServer ? (false as const) : NO_LLAMA_SERVER,
  },
];

/** Deterministic seeded randomness, so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 0x100000000;
  };
}

for (const engine of engines) {
  describe(`aborted clients (${engine.name})`, { skip: engine.skip }, () => {
    let server: TestServer;
    let client: OpenAI;

    before(async () => {
      const model = await testModel("stories260K-chatml.gguf");
      server = await startTestServer({
        backends: engine.backends,
        models: [
          { id: "chat", path: model.path, parallel: 2, context_size: 256, threads: 1 },
          { id: "wide", path: model.path, parallel: 4, context_size: 256, threads: 1 },
          { id: "slow", path: model.path, parallel: 4, context_size: 256, threads: 1 },
        ],
        auto_load: ["chat"],
      });
      client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
    });
    after(async () => {
      await server?.stop();
    });

    const greedy = async () => {
      const answer = await client.chat.completions
        .create({ model: "chat", messages: [{ role: "user", content: GREEDY_PROMPT }], max_tokens: GREEDY_MAX_TOKENS, temperature: 0 })
        .withResponse();
      return { status: answer.response.status, text: answer.data.choices[0]?.message.content ?? "" };
    };

    /** A sampled stream the client abandons after `chunks` chunks; resolves once it has started. */
    const abandoningStream = async (seed: number, chunks: number) => {
      const controller = new AbortController();
      const stream = await client.chat.completions.create(
        {
          model: "chat",
          messages: [{ role: "user", content: `Once upon a time, story ${seed}` }],
          max_tokens: 200,
          temperature: 0.9,
          seed,
          stream: true,
        },
        { signal: controller.signal },
      );
      let seen = 0;
      let started!: () => void;
      const startedPromise = new Promise<void>((r) => (started = r));
      const done = (async () => {
        try {
          for await (const _ of stream) {
            if (++seen === 1) started();
            if (seen >= chunks) {
              controller.abort();
              break;
            }
          }
        } catch {
          // the abort itself
        } finally {
          started();
        }
      })();
      await startedPromise;
      return done;
    };

    test(`${TRIALS} trials: greedy answers queued behind aborted streams equal the unloaded answer`, async (t) => {
      const reference = await greedy();
      assert.equal(reference.status, 200);
      assert.ok(reference.text.length > 0);
      let wrong = 0;
      const failures: string[] = [];
      for (let trial = 0; trial < TRIALS; trial++) {
        const streams = [abandoningStream(trial * 2, 2 + (trial % 3)), abandoningStream(trial * 2 + 1, 3 + (trial % 4))];
        // both streams hold the 2 sequences; the greedy requests queue behind them and get the freed places
        const [first, second] = await Promise.all(streams);
        const answers = Promise.allSettled(Array.from({ length: 4 }, () => greedy()));
        await Promise.all([first, second]);
        for (const answer of await answers) {
          if (answer.status === "rejected") {
            wrong++;
            failures.push(`trial ${trial}: ${(answer.reason as Error).message}`);
          } else if (answer.value.text !== reference.text) {
            wrong++;
            failures.push(`trial ${trial}: HTTP ${answer.value.status} ${JSON.stringify(answer.value.text)}`);
          }
        }
      }
      t.diagnostic(`${wrong} of ${TRIALS * 4} greedy answers differed or failed; reference ${JSON.stringify(reference.text)}`);
      assert.deepEqual(failures.slice(0, 10), [], `${wrong} of ${TRIALS * 4} greedy answers were wrong`);
    });

    /**
     * The gateway never admits more requests than the serving runner has sequences (the scheduler's lease), so
     * the runner's own queue is driven here by talking to the runner's socket directly, as an over-eager
     * gateway would: it must queue the excess, never share a sequence.
     */
    const askRunner = async (model: string, content: string, maxTokens: number, stream: boolean, signal?: AbortSignal) => {
      const runner = server.ctx.scheduler.runnerFor(model);
      assert.ok(runner, `${model} is loaded`);
      const res = await runner.dispatcher.request({
        path: "/v1/chat/completions",
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model, messages: [{ role: "user", content }], max_tokens: maxTokens, temperature: 0, stream }),
        ...(signal ? { signal } : {}),
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`runner answered ${res.statusCode}: ${text}`);
      if (!stream) return (JSON.parse(text) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content ?? "";
      let out = "";
      for (const line of text.split("\n")) {
        if (!line.startsWith("data: {")) continue;
        const event = JSON.parse(line.slice(6)) as { choices?: Array<{ delta?: { content?: string } }>; error?: { message: string } };
        if (event.error) throw new Error(`stream error: ${event.error.message}`);
        out += event.choices?.[0]?.delta?.content ?? "";
      }
      return out;
    };

    test(
      "a runner sent more requests than it has sequences queues the excess: right answers, no errors",
      { skip: engine.name !== "node-llama-cpp" && "llama-server queues excess requests itself" },
      async (t) => {
        const loaded = await fetch(`${server.url}/admin/models/load`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model_id: "wide", settings: { parallel: 1 } }),
        });
        assert.equal(loaded.status, 200, await loaded.text());
        const reference = await askRunner("wide", GREEDY_PROMPT, GREEDY_MAX_TOKENS, false);
        const problems: string[] = [];
        for (let round = 0; round < 10; round++) {
          const answers = await Promise.allSettled(
            Array.from({ length: 8 }, (_, i) => askRunner("wide", GREEDY_PROMPT, GREEDY_MAX_TOKENS, i % 2 === 0)),
          );
          for (const answer of answers) {
            if (answer.status === "rejected") problems.push(`round ${round}: ${(answer.reason as Error).message}`);
            else if (answer.value !== reference) problems.push(`round ${round}: wrong answer ${JSON.stringify(answer.value)}`);
          }
        }
        t.diagnostic(`${problems.length} of 80 answers wrong or failed`);
        assert.deepEqual(problems.slice(0, 10), []);
      },
    );

    test(
      "a client that leaves while its request waits in the runner for a sequence costs no generation",
      { skip: engine.name !== "node-llama-cpp" && "llama-server queues excess requests itself" },
      async () => {
        // a runner with 1 sequence and a slow token loop, so that one generation holds the sequence while a second
        // request (sent to the runner directly) waits inside it
        process.env["LMX_ENABLE_FAULT_INJECTION"] = "1";
        process.env["LMX_FAULT_INJECTION"] = JSON.stringify({ tokenDelayMs: 20 });
        let loaded: Response;
        try {
          loaded = await fetch(`${server.url}/admin/models/load`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ model_id: "slow", settings: { parallel: 1 } }),
          });
        } finally {
          delete process.env["LMX_ENABLE_FAULT_INJECTION"];
          delete process.env["LMX_FAULT_INJECTION"];
        }
        assert.equal(loaded.status, 200, await loaded.text());
        const stats = async () => {
          const list = await getJson<{
            data: Array<{
              id: string;
              stats: { requests_served: number; requests_active: number; requests_waiting: number; generated_tokens: number };
            }>;
          }>(`${server.url}/admin/models/loaded`);
          const entry = list.body.data.find((m) => m.id === "slow");
          assert.ok(entry?.stats);
          return entry.stats;
        };
        const before = await stats();
        // 200 tokens × 20 ms: the sequence stays held for seconds (ignore_eos: the tiny model may stop early)
        const holding = client.chat.completions.create({
          model: "slow",
          messages: [{ role: "user", content: "Hold the sequence." }],
          max_tokens: 200,
          temperature: 0,
          ...{ ignore_eos: true },
        });
        await waitFor(async () => (await stats()).requests_active === 1, 10_000, "the first request to run");
        const leaving = new AbortController();
        const waiting = askRunner("slow", "Wait for it.", 100, false, leaving.signal).catch(() => null);
        await waitFor(async () => (await stats()).requests_waiting === 1, 10_000, "the second request to wait in the runner");
        leaving.abort();
        await waiting;
        const held = await holding;
        await waitFor(async () => (await stats()).requests_active === 0, 20_000, "the runner to be idle");
        // the waiting request's close was heard: no generation ran for it after the first one finished
        assert.equal((await stats()).requests_waiting, 0);
        const after = await stats();
        assert.equal(after.requests_served - before.requests_served, 1, "only the request whose client stayed was generated");
        assert.equal(after.generated_tokens - before.generated_tokens, held.usage?.completion_tokens);
      },
    );

    test(`a storm of ${STORM} streams aborted at random moments: clients that kept reading get the right answer, no false model_crashed`, async (t) => {
      // the clients that keep reading ask greedy questions whose unloaded answers are known
      const prompts = ["Story about a cat.", "Story about a red ball.", "Story about the sea."];
      const references = new Map<string, string>();
      for (const prompt of prompts) {
        const answer = await client.chat.completions.create({
          model: "chat",
          messages: [{ role: "user", content: prompt }],
          max_tokens: STORM_MAX_TOKENS,
          temperature: 0,
        });
        references.set(prompt, answer.choices[0]?.message.content ?? "");
      }
      const rand = random(42);
      let next = 0;
      let crashed = 0;
      let completed = 0;
      let aborted = 0;
      const problems: string[] = [];
      const worker = async () => {
        while (next < STORM) {
          const index = next++;
          const abortAfter = rand() < 0.6 ? Math.floor(rand() * 10) : Infinity;
          const keeps = abortAfter === Infinity;
          const prompt = keeps ? prompts[index % prompts.length]! : `Story ${index}`;
          const controller = new AbortController();
          let seen = 0;
          let finished = false;
          let text = "";
          try {
            const stream = await client.chat.completions.create(
              {
                model: "chat",
                messages: [{ role: "user", content: prompt }],
                max_tokens: keeps ? STORM_MAX_TOKENS : 64,
                temperature: keeps ? 0 : 0.8,
                seed: index,
                stream: true,
              },
              { signal: controller.signal },
            );
            for await (const chunk of stream) {
              text += chunk.choices[0]?.delta.content ?? "";
              if (chunk.choices[0]?.finish_reason) finished = true;
              if (++seen > abortAfter) {
                controller.abort();
                break;
              }
            }
            if (!keeps) aborted++;
            else if (!finished) problems.push(`stream ${index} ended without a finish_reason`);
            else if (text !== references.get(prompt)) problems.push(`stream ${index}: wrong answer ${JSON.stringify(text)}`);
            else completed++;
          } catch (error) {
            if (controller.signal.aborted) {
              aborted++;
              continue;
            }
            const message = (error as Error).message;
            if (/model_crashed|lost the connection|unloaded/.test(message)) crashed++;
            problems.push(`stream ${index}: ${message}`);
          }
        }
      };
      await Promise.all(Array.from({ length: STORM_CONCURRENCY }, worker));
      t.diagnostic(`${completed} right, ${aborted} aborted, ${crashed} false model_crashed, ${problems.length} problems`);
      assert.deepEqual(problems.slice(0, 10), [], `${problems.length} streams that kept reading failed (${crashed} with model_crashed)`);
    });
  });
}
