/**
 * The family fixtures on both engines. llama-server renders each template with llama.cpp's own Jinja engine
 * (`--jinja`, POST /apply-template): its prompt must equal ours (@huggingface/jinja through renderPrompt) byte
 * for byte, which is our proof that the renderer and the templates are right. node-llama-cpp loads each and
 * generates from our prompt.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { LlamaCompletion, LlamaLogLevel, getLlama } from "node-llama-cpp";
import { renderPrompt } from "../../src/chat/templates/render.js";
import type { ChatTurn, TemplateInfo } from "../../src/chat/types.js";
import { CHAT_FAMILY_FIXTURES, CHAT_FAMILY_NAMES, writeChatFamilyModel, type ChatFamilyName } from "../../src/gguf/chat-families.js";
import { NO_LLAMA_SERVER, testLlamaServerBinary } from "../helpers/llama-server.js";

const binary = testLlamaServerBinary();

const plain: ChatTurn[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Hello there" },
  { role: "assistant", content: "Hi! How can I help?" },
  { role: "user", content: "Tell me a story." },
];

// A 9-character id: Mistral's rule, so llama-server and we render the same id.
const CALL_ID = "abcDEF123";
const toolConversation: ChatTurn[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Weather in Paris?" },
  {
    role: "assistant",
    content: null,
    reasoning: "I need the tool.",
    toolCalls: [{ id: CALL_ID, name: "get_weather", arguments: '{"city": "Paris"}' }],
  },
  { role: "tool", content: "sunny", toolCallId: CALL_ID, name: "get_weather" },
];
const tools = [
  {
    name: "get_weather",
    description: "Weather now",
    parameters: {
      type: "object",
      properties: { city: { type: "string", description: "City" }, days: { type: "array", items: { type: "integer" } } },
      required: ["city"],
    },
  },
];

/** The same conversation in OpenAI's wire shape, as llama-server takes it. */
function openAiMessages(turns: readonly ChatTurn[]): unknown[] {
  return turns.map((turn) => {
    if (turn.role === "assistant")
      return {
        role: "assistant",
        content: turn.content,
        ...(turn.reasoning === undefined ? {} : { reasoning_content: turn.reasoning }),
        ...(turn.toolCalls
          ? {
              tool_calls: turn.toolCalls.map((call) => ({ id: call.id, type: "function", function: { name: call.name, arguments: call.arguments } })),
            }
          : {}),
      };
    if (turn.role === "tool") return { role: "tool", content: turn.content, tool_call_id: turn.toolCallId, name: turn.name };
    return turn;
  });
}

function infoOf(family: ChatFamilyName): TemplateInfo {
  const fixture = CHAT_FAMILY_FIXTURES[family];
  return { jinja: fixture.jinja, bosToken: fixture.bosToken ?? "<s>", eosToken: fixture.eosToken, addsBos: fixture.addBos ?? true };
}

function post(socketPath: string, route: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath, path: route, method: route === "/health" ? "GET" : "POST", headers: { "content-type": "application/json" } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => {
          try {
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> });
          } catch (error) {
            reject(new Error(`${route}: ${res.statusCode} ${text.slice(0, 200)}`, { cause: error }));
          }
        });
      },
    );
    req.on("error", reject);
    req.end(route === "/health" ? undefined : JSON.stringify(body));
  });
}

interface LlamaServer {
  child: ChildProcess;
  socketPath: string;
  log: () => string;
}

async function startLlamaServer(modelPath: string, socketPath: string): Promise<LlamaServer> {
  const child = spawn(
    binary!,
    ["--model", modelPath, "--jinja", "--host", socketPath, "--ctx-size", "512", "--parallel", "1", "--threads", "1", "--no-webui"],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let log = "";
  child.stdout?.on("data", (chunk: Buffer) => (log += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()));
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) => reject(new Error(`llama-server exited (${code}): ${log.slice(-2000)}`))),
  );
  exited.catch(() => undefined);
  // Ready when /health answers 200; the test's timeout bounds the wait.
  for (;;) {
    const health = await Promise.race([post(socketPath, "/health", null).catch(() => null), exited]);
    if (health?.status === 200) return { child, socketPath, log: () => log };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function stop(server: LlamaServer | undefined): Promise<void> {
  if (!server || server.child.exitCode !== null) return;
  const exited = new Promise((resolve) => server.child.once("exit", resolve));
  server.child.kill("SIGTERM");
  await exited;
}

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "lmx-chat-families-"));
  for (const family of CHAT_FAMILY_NAMES) await writeChatFamilyModel(path.join(dir, `${family}.gguf`), family);
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("family fixtures on llama-server (llama.cpp's Jinja)", { skip: binary ? false : NO_LLAMA_SERVER, timeout: 120_000 }, () => {
  for (const family of CHAT_FAMILY_NAMES) {
    describe(family, () => {
      let server: LlamaServer | undefined;
      before(async () => {
        server = await startLlamaServer(path.join(dir, `${family}.gguf`), path.join(dir, `${family}.sock`));
      });
      after(async () => {
        await stop(server);
      });

      test("/apply-template equals our prompt for a plain conversation", async () => {
        const theirs = await post(server!.socketPath, "/apply-template", { messages: openAiMessages(plain) });
        assert.equal(theirs.status, 200, JSON.stringify(theirs.json));
        assert.equal(theirs.json["prompt"], renderPrompt(infoOf(family), plain, null));
      });

      test("/apply-template equals our prompt with tools, a call with reasoning, and its result", async () => {
        const theirs = await post(server!.socketPath, "/apply-template", {
          messages: openAiMessages(toolConversation),
          tools: tools.map((tool) => ({ type: "function", function: tool })),
        });
        assert.equal(theirs.status, 200, JSON.stringify(theirs.json));
        assert.equal(theirs.json["prompt"], renderPrompt(infoOf(family), toolConversation, tools));
      });

      test("each marker token is one token, and the model generates from our prompt", async () => {
        const fixture = CHAT_FAMILY_FIXTURES[family];
        for (const text of [...fixture.specialTokens, ...(fixture.textTokens ?? [])]) {
          const tokenized = await post(server!.socketPath, "/tokenize", { content: text, parse_special: true });
          assert.equal((tokenized.json["tokens"] as unknown[]).length, 1, `${text}: ${JSON.stringify(tokenized.json)}`);
        }
        const completion = await post(server!.socketPath, "/completion", {
          prompt: renderPrompt(infoOf(family), plain, null),
          n_predict: 4,
          temperature: 0,
        });
        assert.equal(completion.status, 200, JSON.stringify(completion.json));
        assert.ok((completion.json["tokens_predicted"] as number) >= 1);
      });
    });
  }
});

describe("family fixtures on node-llama-cpp", { timeout: 120_000 }, () => {
  for (const family of CHAT_FAMILY_NAMES) {
    test(`${family}: loads and generates from our prompt`, async () => {
      const llama = await getLlama({ gpu: false, maxThreads: 1, build: "never", logLevel: LlamaLogLevel.error });
      try {
        const model = await llama.loadModel({ modelPath: path.join(dir, `${family}.gguf`) });
        const context = await model.createContext({ contextSize: 512, threads: 1 });
        const prompt = renderPrompt(infoOf(family), toolConversation, tools);
        const tokens = model.tokenize(prompt, true);
        // The marker tokens of the rendered prompt are single tokens here too.
        const markers = CHAT_FAMILY_FIXTURES[family].specialTokens.filter((text) => prompt.includes(text));
        assert.ok(markers.length > 0);
        for (const text of markers) assert.ok(tokens.includes(model.tokenize(text, true)[0]!), text);
        const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
        const result = await completion.generateCompletionWithMeta(tokens, { maxTokens: 4, temperature: 0 });
        assert.ok(["maxTokens", "eogToken"].includes(result.metadata.stopReason), result.metadata.stopReason);
        await context.dispose();
        await model.dispose();
      } finally {
        await llama.dispose();
      }
    });
  }
});
