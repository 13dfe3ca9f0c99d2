/**
 * The generic child-server engine end to end with a second kind of child: llama.cpp's llama-server started
 * through the `openai-compatible` recipe from an operator's command line (`backends.openai_compatible`), on a
 * loopback port, spoken to only in OpenAI's API. The chat layer's raw generation is translated to a streamed
 * `/v1/completions` and back in the runner's relay; grammars go as `grammar`, top-N log-probabilities as
 * `logprobs`. This is the path the MLX and vLLM recipes take (they are not verified on real hardware).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { NO_LLAMA_SERVER, testLlamaServerBinary } from "../helpers/llama-server.js";
import { testModel } from "../helpers/models.js";
import { getJson, showLogsOnFailure, startTestServer, type TestServer } from "../helpers/server.js";

const binary = testLlamaServerBinary();
const skip = binary ? false : NO_LLAMA_SERVER;

interface Loaded {
  data: Array<{ id: string; backend: string; pid: number }>;
}

describe("openai-compatible recipe: llama-server from an operator's command line", { skip, timeout: 180_000 }, () => {
  let server: TestServer;
  let client: OpenAI;

  before(async () => {
    const chat = await testModel("stories260K-chatml.gguf");
    server = await startTestServer({
      backends: {
        llama_server: false,
        cpu_fallback: false,
        order: ["oa-llama", "llama.cpp"],
        openai_compatible: [
          {
            name: "oa-llama",
            command: [
              binary!,
              "--model",
              "{model}",
              "--host",
              "{host}",
              "--port",
              "{port}",
              "--ctx-size",
              "{ctx_total}",
              "--parallel",
              "{parallel}",
              "--threads",
              "{threads}",
              "--alias",
              "{alias}",
              "--no-kv-unified",
              "--cache-ram",
              "0",
              "--no-webui",
            ],
            formats: ["gguf"],
            health_path: "/health",
          },
        ],
      },
      models: [{ id: "chat", path: chat.path, context_size: 256, parallel: 2, threads: 1 }],
    });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
  });
  after(async () => {
    await server?.stop();
  });

  test("the model is served by the command's server: OpenAI completions pass through", async () => {
    await showLogsOnFailure(server, async () => {
      const whole = await client.completions.create({ model: "chat", prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
      assert.equal(whole.usage?.completion_tokens, 8);
      assert.ok(whole.choices[0]!.text.length > 0);
      const loaded = await getJson<Loaded>(`${server.url}/admin/models/loaded`);
      assert.equal(loaded.body.data.find((m) => m.id === "chat")?.backend, "oa-llama");
    });
  });

  test("chat goes through the /completion translation: streamed equals whole, finish reasons and usage are right", async () => {
    await showLogsOnFailure(server, async () => {
      const messages = [{ role: "user" as const, content: "Tell me a story" }];
      const whole = await client.chat.completions.create({ model: "chat", messages, max_tokens: 12, temperature: 0 });
      assert.equal(whole.choices[0]!.finish_reason, "length");
      assert.equal(whole.usage?.completion_tokens, 12);
      assert.ok((whole.usage?.prompt_tokens ?? 0) > 0, "the prompt tokens come from the server's usage");
      let streamed = "";
      for await (const chunk of await client.chat.completions.create({ model: "chat", messages, max_tokens: 12, temperature: 0, stream: true })) {
        streamed += chunk.choices[0]?.delta?.content ?? "";
      }
      assert.equal(streamed, whole.choices[0]!.message.content);
      // a stop string inside the greedy answer ends it there, with finish_reason "stop"
      const text = whole.choices[0]!.message.content ?? "";
      const word = text.trim().split(/\s+/)[1];
      if (word) {
        const stopped = await client.chat.completions.create({ model: "chat", messages, max_tokens: 12, temperature: 0, stop: [word] });
        assert.equal(stopped.choices[0]!.finish_reason, "stop");
        assert.equal(stopped.choices[0]!.message.content, text.slice(0, text.indexOf(word)));
      }
    });
  });

  test("a JSON schema constrains the output through the server's grammar field; log-probabilities come back", async () => {
    await showLogsOnFailure(server, async () => {
      const answer = await client.chat.completions.create({
        model: "chat",
        messages: [{ role: "user", content: "Give me a colour" }],
        max_tokens: 60,
        temperature: 0,
        logprobs: true,
        top_logprobs: 2,
        response_format: {
          type: "json_schema",
          json_schema: {
            name: "colour",
            strict: true,
            schema: { type: "object", properties: { c: { type: "string", enum: ["red", "green"] } }, required: ["c"], additionalProperties: false },
          },
        },
      });
      const parsed = JSON.parse(answer.choices[0]!.message.content ?? "") as { c: string };
      assert.ok(["red", "green"].includes(parsed.c), answer.choices[0]!.message.content ?? "");
      const logprobs = answer.choices[0]!.logprobs?.content ?? [];
      assert.ok(logprobs.length > 0);
      for (const entry of logprobs) {
        assert.ok(Number.isFinite(entry.logprob));
        assert.ok(entry.top_logprobs.length >= 1 && entry.top_logprobs.length <= 2);
      }
    });
  });
});
