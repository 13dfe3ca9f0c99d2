/**
 * The OpenAI-compatible child-server recipes as text: command lines, failure classification, error mapping,
 * memory estimates and the /completion ↔ /v1/completions translation. MLX and vLLM are NOT VERIFIED ON REAL
 * HARDWARE: these tests pin what we send and how we read what comes back, not that the servers agree.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { defaultBackendOrder } from "../../src/config/backend-order.js";
import { type LmxError } from "../../src/errors/codes.js";
import { detectPythonEngines, type PlatformFacts } from "../../src/engines/openai-child/detect.js";
import { estimateSafetensors, kvCacheBytes, readModelShape } from "../../src/engines/openai-child/model-config.js";
import { classifyOpenAiChildExit, mapOpenAiChildError, openAiChildArgs, templateFromFolder } from "../../src/engines/openai-child/recipe.js";
import { CompletionStreamTranslator, toOpenAiCompletion, type DialectOptions } from "../../src/engines/openai-child/translate.js";
import { parseRawCompletion } from "../../src/api/llama/completion.js";

const common = { modelPath: "/models/qwen", modelId: "qwen", host: "127.0.0.1", port: 40001, contextSize: 4096, parallel: 4, threads: 8 };

test("command lines: mlx_lm.server, vllm-mlx serve, vllm serve (context per sequence, sequences), with a python launcher", () => {
  assert.deepEqual(openAiChildArgs({ ...common, flavor: "mlx-lm", spec: { launcher: ["-m", "mlx_lm.server"] } }), [
    "-m",
    "mlx_lm.server",
    "--model",
    "/models/qwen",
    "--host",
    "127.0.0.1",
    "--port",
    "40001",
  ]);
  assert.deepEqual(openAiChildArgs({ ...common, flavor: "vllm-mlx", spec: {} }), [
    "serve",
    "/models/qwen",
    "--host",
    "127.0.0.1",
    "--port",
    "40001",
    "--continuous-batching",
  ]);
  assert.equal(openAiChildArgs({ ...common, parallel: 1, flavor: "vllm-mlx", spec: {} }).includes("--continuous-batching"), false);
  assert.deepEqual(openAiChildArgs({ ...common, flavor: "vllm", spec: {} }), [
    "serve",
    "/models/qwen",
    "--host",
    "127.0.0.1",
    "--port",
    "40001",
    "--served-model-name",
    "qwen",
    "--max-model-len",
    "4096",
    "--max-num-seqs",
    "4",
  ]);
});

test("openai-compatible: the operator's command with placeholders filled in; an unknown one is refused", () => {
  const command = [
    "--model",
    "{model}",
    "--host",
    "{host}",
    "--port",
    "{port}",
    "-c",
    "{ctx_total}",
    "-np",
    "{parallel}",
    "--alias={alias}",
    "-t",
    "{threads}",
  ];
  assert.deepEqual(openAiChildArgs({ ...common, flavor: "openai-compatible", spec: { command } }), [
    "--model",
    "/models/qwen",
    "--host",
    "127.0.0.1",
    "--port",
    "40001",
    "-c",
    "16384",
    "-np",
    "4",
    "--alias=qwen",
    "-t",
    "8",
  ]);
  assert.throws(() => openAiChildArgs({ ...common, flavor: "openai-compatible", spec: { command: ["{gpu}"] } }), /names \{gpu\}/);
});

test("load failures on the servers' output become our codes", () => {
  const cases: Array<[Parameters<typeof classifyOpenAiChildExit>[0], string[], string]> = [
    ["vllm", ["INFO ...", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"], "insufficient_memory"],
    [
      "vllm",
      ["ValueError: The model's max seq len (32768) is larger than the maximum number of tokens that can be stored in KV cache (20000)."],
      "insufficient_memory",
    ],
    ["vllm", ["safetensors_rust.SafetensorError: Error while deserializing header: HeaderTooLarge"], "model_file_invalid"],
    [
      "mlx-lm",
      ["[METAL] Command buffer execution failed: Insufficient Memory (00000008:kIOGPUCommandBufferCallbackErrorOutOfMemory)"],
      "insufficient_memory",
    ],
    ["mlx-lm", ["ModuleNotFoundError: No module named 'mlx'"], "model_loader_crashed"],
    ["vllm-mlx", ["Traceback (most recent call last):", "KeyError: 'foo'"], "model_loader_crashed"],
  ];
  for (const [flavor, tail, code] of cases) {
    const error = classifyOpenAiChildExit(flavor, 1, null, tail, "/models/x");
    assert.equal(error.code, code, tail.join(" | "));
    assert.match(error.message, /\/models\/x/);
  }
});

test("error answers: context, bad request, busy, anything else internal", () => {
  assert.equal(
    mapOpenAiChildError(
      "vllm",
      400,
      { object: "error", message: "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens" },
      "",
    ).code,
    "context_length_exceeded",
  );
  assert.equal(mapOpenAiChildError("vllm", 400, { error: { message: "temperature must be non-negative" } }, "").code, "invalid_request");
  assert.equal(mapOpenAiChildError("vllm-mlx", 422, { detail: "field required" }, "").code, "invalid_request");
  const busy = mapOpenAiChildError("mlx-lm", 503, null, "overloaded");
  assert.equal(busy.code, "runner_busy");
  assert.equal(busy.retryAfterSec, 1);
  assert.equal(mapOpenAiChildError("mlx-lm", 500, null, "boom").code, "internal_error");
});

test("memory estimate from config.json and the safetensors sizes: weights as stored, KV from layers × KV heads × head size", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-mlx-"));
  try {
    // Llama-3-8B's shape, 4-bit MLX: 32 layers, 8 KV heads, head size 4096/32 = 128
    const config = {
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      hidden_size: 4096,
      max_position_embeddings: 8192,
      quantization: { group_size: 64, bits: 4 },
    };
    writeFileSync(path.join(dir, "config.json"), JSON.stringify(config));
    for (const [name, size] of [
      ["model-00001-of-00002.safetensors", 3_000_000_000],
      ["model-00002-of-00002.safetensors", 1_500_000_000],
    ] as const) {
      writeFileSync(path.join(dir, name), "");
      truncateSync(path.join(dir, name), size); // sparse: the size is what counts
    }
    const shape = readModelShape(config);
    assert.deepEqual(shape, { layers: 32, kvHeads: 8, headDim: 128, trainContext: 8192, quantization: { bits: 4, groupSize: 64 } });
    // 2 × 32 × 8 × 128 × 2 bytes = 128 KiB per token
    assert.equal(kvCacheBytes(shape, 1), 131_072);
    const unified = estimateSafetensors(dir, 4096, 4, "unified");
    const kv = 131_072 * 4096 * 4;
    assert.equal(unified.trainContextSize, 8192);
    assert.equal(unified.estimate.modelRam, 4_500_000_000);
    assert.equal(unified.estimate.vram, 0);
    assert.equal(unified.estimate.ram, 4_500_000_000 + kv + Math.round((4_500_000_000 + kv) * 0.1));
    const gpu = estimateSafetensors(dir, null, 1, "gpu");
    assert.equal(gpu.estimate.modelVram, 4_500_000_000);
    assert.equal(gpu.estimate.contextVram, 131_072 * 4096, "no context_size: the training context, capped at 4096");
    assert.equal(gpu.estimate.modelRam, 0);
    writeFileSync(path.join(dir, "config.json"), JSON.stringify({ model_type: "mystery" }));
    assert.throws(
      () => estimateSafetensors(dir, 512, 1, "unified"),
      (e: LmxError) => e.code === "model_file_invalid",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the chat template and special tokens come from tokenizer_config.json", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-tok-"));
  try {
    assert.equal(templateFromFolder(dir), null);
    writeFileSync(
      path.join(dir, "tokenizer_config.json"),
      JSON.stringify({ chat_template: "{{ messages }}", bos_token: { content: "<s>" }, eos_token: "</s>", add_bos_token: true }),
    );
    assert.deepEqual(templateFromFolder(dir), { jinja: "{{ messages }}", bosToken: "<s>", eosToken: "</s>", addsBos: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const mlx: DialectOptions = { model: null, grammarField: null, extendedSampling: false, contextSize: 2048, serverName: "mlx_lm.server" };
const vllm: DialectOptions = { model: "qwen", grammarField: "guided_grammar", extendedSampling: true, contextSize: 2048, serverName: "vLLM" };

test("/completion → /v1/completions: fields mapped, 'until full' is the context, grammar where the server has one", () => {
  const raw = parseRawCompletion({
    prompt: "<|im_start|>user",
    n_predict: -1,
    temperature: 0,
    top_k: 1,
    stop: ["<|im_end|>"],
    n_probs: 2,
    preserved_tokens: ["<tool_call>"],
  });
  assert.deepEqual(toOpenAiCompletion(raw, mlx), {
    prompt: "<|im_start|>user",
    max_tokens: 2048,
    stream: true,
    stream_options: { include_usage: true },
    temperature: 0,
    stop: ["<|im_end|>"],
    logprobs: 2,
  });
  const body = toOpenAiCompletion({ ...raw, n_predict: 16, grammar: 'root ::= "a"' }, vllm);
  assert.equal(body["model"], "qwen");
  assert.equal(body["max_tokens"], 16);
  assert.equal(body["guided_grammar"], 'root ::= "a"');
  assert.equal(body["top_k"], 1);
  assert.equal(body["skip_special_tokens"], false);
  assert.throws(
    () => toOpenAiCompletion({ ...raw, grammar: 'root ::= "a"' }, mlx),
    (e: LmxError) => e.code === "unsupported_parameter",
  );
});

async function translate(chunks: string[]): Promise<Array<Record<string, unknown>>> {
  const input = new PassThrough();
  const output = input.pipe(new CompletionStreamTranslator());
  const collected: Buffer[] = [];
  output.on("data", (b: Buffer) => collected.push(Buffer.from(b)));
  const done = new Promise((resolve) => output.on("end", resolve));
  for (const chunk of chunks) input.write(chunk);
  input.end();
  await done;
  return Buffer.concat(collected)
    .toString("utf8")
    .split("\n\n")
    .filter((e) => e.startsWith("data: "))
    .map((e) => JSON.parse(e.slice(6)) as Record<string, unknown>);
}

test("a streamed /v1/completions answer becomes /completion events, however the bytes are split", async () => {
  const sse = [
    `data: ${JSON.stringify({ choices: [{ text: "Hel", finish_reason: null, logprobs: { tokens: ["Hel"], token_logprobs: [-0.5], top_logprobs: [{ Hel: -0.5, He: -1.2 }] } }] })}\n\n`,
    `data: ${JSON.stringify({ choices: [{ text: "lo", finish_reason: null, logprobs: { tokens: ["lo"], token_logprobs: [-0.1], top_logprobs: [{ lo: -0.1 }] } }] })}\r\n\r\n`,
    `data: ${JSON.stringify({ choices: [{ text: "", finish_reason: "stop", stop_reason: "<|im_end|>" }] })}\n\n`,
    `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 7, completion_tokens: 2 } })}\n\n`,
    "data: [DONE]\n\n",
  ].join("");
  // split at every 7th byte: events must survive arbitrary chunking
  const pieces: string[] = [];
  for (let i = 0; i < sse.length; i += 7) pieces.push(sse.slice(i, i + 7));
  const events = await translate(pieces);
  assert.equal(events.length, 3);
  assert.deepEqual(events[0], {
    content: "Hel",
    stop: false,
    completion_probabilities: [
      {
        id: -1,
        token: "Hel",
        bytes: [72, 101, 108],
        logprob: -0.5,
        top_logprobs: [
          { id: -1, token: "Hel", bytes: [72, 101, 108], logprob: -0.5 },
          { id: -1, token: "He", bytes: [72, 101], logprob: -1.2 },
        ],
      },
    ],
  });
  assert.equal(events[1]!["content"], "lo");
  const final = events[2]!;
  assert.equal(final["stop"], true);
  assert.equal(final["stop_type"], "word");
  assert.equal(final["stopping_word"], "<|im_end|>");
  assert.equal(final["tokens_predicted"], 2);
  assert.equal(final["tokens_evaluated"], 7);
});

test("length and end-of-sequence finishes; an error event passes as an error; a cut stream has no final event", async () => {
  const length = await translate([`data: ${JSON.stringify({ choices: [{ text: "a", finish_reason: "length" }] })}\n\ndata: [DONE]\n\n`]);
  assert.equal(length.at(-1)!["stop_type"], "limit");
  const eos = await translate([`data: ${JSON.stringify({ choices: [{ text: "", finish_reason: "stop", stop_reason: null }] })}\n\n`]);
  assert.equal(eos.at(-1)!["stop_type"], "eos", "the end of the body after a finish reason is final too");
  const error = await translate([`data: ${JSON.stringify({ error: { message: "boom" } })}\n\n`]);
  assert.deepEqual(error, [{ error: { message: "boom" } }]);
  const cut = await translate([`data: ${JSON.stringify({ choices: [{ text: "a", finish_reason: null }] })}\n\n`]);
  assert.equal(cut.length, 1);
  assert.equal(cut[0]!["stop"], false);
});

test("default backend order: MLX servers first on Apple Silicon; llama-server then vLLM elsewhere", () => {
  assert.deepEqual(defaultBackendOrder("darwin", "arm64"), ["vllm-mlx", "mlx-lm", "llama-server", "llama.cpp", "llama.cpp-cpu"]);
  assert.deepEqual(defaultBackendOrder("linux", "x64"), ["llama-server", "vllm", "llama.cpp", "llama.cpp-cpu"]);
});

test("detection: a console script on PATH is found; the platform decides whether it is available", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-path-"));
  const saved = process.env["PATH"];
  try {
    const script = path.join(dir, "mlx_lm.server");
    writeFileSync(script, "#!/bin/sh\nexit 0\n");
    chmodSync(script, 0o755);
    process.env["PATH"] = `${dir}${path.delimiter}${saved}`;
    const mac: PlatformFacts = { platform: "darwin", arch: "arm64", appleSilicon: true, cuda: false };
    const linux: PlatformFacts = { platform: "linux", arch: "x64", appleSilicon: false, cuda: false };
    const onMac = detectPythonEngines(mac).find((e) => e.name === "mlx-lm")!;
    assert.equal(onMac.available, true);
    assert.equal(onMac.binary, script);
    assert.deepEqual(onMac.launcher, []);
    assert.equal(onMac.verified, false);
    const onLinux = detectPythonEngines(linux).find((e) => e.name === "mlx-lm")!;
    assert.equal(onLinux.installed, true);
    assert.equal(onLinux.available, false);
    assert.match(onLinux.note, /needs Apple Silicon/);
    const vllm = detectPythonEngines(linux, "when-useful").find((e) => e.name === "vllm")!;
    assert.equal(vllm.available, false);
  } finally {
    process.env["PATH"] = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("log-probabilities in the chat API's shape (llama-server's completions) are read too", async () => {
  const chunk = {
    choices: [
      {
        text: "a",
        finish_reason: "length",
        logprobs: {
          content: [
            {
              token: "a",
              logprob: -0.25,
              bytes: [97],
              top_logprobs: [
                { token: "a", logprob: -0.25, bytes: [97] },
                { token: "b", logprob: -2 },
              ],
            },
          ],
        },
      },
    ],
  };
  const events = await translate([`data: ${JSON.stringify(chunk)}\n\ndata: [DONE]\n\n`]);
  assert.deepEqual(events[0]!["completion_probabilities"], [
    {
      id: -1,
      token: "a",
      bytes: [97],
      logprob: -0.25,
      top_logprobs: [
        { id: -1, token: "a", bytes: [97], logprob: -0.25 },
        { id: -1, token: "b", bytes: [98], logprob: -2 },
      ],
    },
  ]);
});
