import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ChatMLChatWrapper,
  LlamaChat,
  LlamaCompletion,
  LlamaLogLevel,
  getLlama,
  readGgufFileInfo,
  type Llama,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import {
  createRandomFill,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  gv,
  tensorByteSize,
  writeGgufFile,
  type GgufFileSpec,
} from "../../src/gguf/writer.js";
import { LLAMA_SHAPES, SPECIAL_IDS, buildLlamaVocab, llamaParamCount, writeLlamaModel } from "../../src/gguf/llama-model.js";
import { writeBadMagicFile, writeNotGgufFile, writeTinyLlamaModel, writeTruncatedCopy } from "../../src/gguf/fixtures.js";

let dir: string;
let llama: Llama;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "lmx-gguf-test-"));
  // One thread everywhere: the default thread count is pathologically slow on small CI boxes.
  llama = await getLlama({ gpu: false, maxThreads: 1, build: "never", logLevel: LlamaLogLevel.error });
});

after(async () => {
  // Remove files first: the process can exit as soon as llama.dispose() settles,
  // which cut short a cleanup that came after it.
  if (dir) await rm(dir, { recursive: true, force: true });
  await llama?.dispose();
});

const file = (name: string): string => join(dir, name);

async function sha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

interface Generation {
  readonly text: string;
  readonly tokens: readonly Token[];
  readonly stopReason: string;
}

/** A fresh context per call, so a second run cannot benefit from cached prompt state. */
async function complete(model: LlamaModel, prompt: string, maxTokens = 16): Promise<Generation> {
  const context = await model.createContext({ contextSize: 256, threads: 1 });
  try {
    const tokens: Token[] = [];
    const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
    const result = await completion.generateCompletionWithMeta(prompt, {
      maxTokens,
      temperature: 0,
      onToken: (chunk) => tokens.push(...chunk),
    });
    return { text: result.response, tokens, stopReason: result.metadata.stopReason };
  } finally {
    await context.dispose();
  }
}

/** Random weights may legitimately emit EOS early; anything else must run to maxTokens. */
function assertGenerated(generation: Generation, maxTokens: number): void {
  assert.ok(generation.tokens.length > 0, "generated no tokens");
  if (generation.stopReason !== "eogToken") {
    assert.equal(generation.stopReason, "maxTokens");
    assert.equal(generation.tokens.length, maxTokens);
  }
}

describe("gguf writer primitives", () => {
  test("float16 conversion round-trips representative values", () => {
    for (const exact of [0, 1, -2, 0.5, 65504, 6.103515625e-5, 5.960464477539063e-8, -0.03125])
      assert.equal(float16BitsToFloat32(float32ToFloat16Bits(exact)), exact);
    assert.equal(float32ToFloat16Bits(1), 0x3c00);
    assert.equal(float32ToFloat16Bits(-2), 0xc000);
    assert.equal(float32ToFloat16Bits(65504), 0x7bff);
    assert.equal(float32ToFloat16Bits(1e6), 0x7c00);
    assert.equal(float32ToFloat16Bits(5.960464477539063e-8), 0x0001);
    assert.equal(float32ToFloat16Bits(1 + 2 ** -11), 0x3c00); // tie rounds to even
    assert.equal(float32ToFloat16Bits(1 + 3 * 2 ** -11), 0x3c02);
    assert.ok(Math.abs(float16BitsToFloat32(float32ToFloat16Bits(0.02)) - 0.02) < 1e-5);
  });

  test("every metadata type reads back through node-llama-cpp", async () => {
    const path = file("types.gguf");
    const raw = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]).buffer);
    const spec: GgufFileSpec = {
      metadata: {
        "general.architecture": gv.str("llama"),
        "test.u8": gv.u8(255),
        "test.i8": gv.i8(-128),
        "test.u16": gv.u16(65535),
        "test.i16": gv.i16(-32768),
        "test.u32": gv.u32(4294967295),
        "test.i32": gv.i32(-2147483648),
        "test.f32": gv.f32(1.5),
        "test.u64": gv.u64(2n ** 63n),
        "test.i64": gv.i64(-5),
        "test.f64": gv.f64(Math.PI),
        "test.bool": gv.bool(true),
        "test.string": gv.str("héllo ▁"),
        "test.strings": gv.strings(["a", "", "ü"]),
        "test.i32s": gv.numbers("i32", [1, -2, 3]),
        "test.bools": { type: "array", itemType: "bool", value: [true, false] },
      },
      tensors: [
        { name: "raw", dims: [4, 2], type: "f32", data: raw },
        { name: "q", dims: [64], type: "q4_0", data: createRandomFill("q4_0", { seed: 1, amplitude: 0.03 }) },
      ],
    };
    const { bytes } = await writeGgufFile(path, spec);
    assert.equal((await stat(path)).size, bytes);
    const info = await readGgufFileInfo(path, { logWarnings: false });
    const flat = info.metadata as unknown as { test: Record<string, unknown>; general: Record<string, unknown> };
    assert.equal(info.version, 3);
    assert.deepEqual(
      { ...flat.test },
      {
        u8: 255,
        i8: -128,
        u16: 65535,
        i16: -32768,
        u32: 4294967295,
        i32: -2147483648,
        f32: 1.5,
        u64: 2n ** 63n,
        i64: -5n,
        f64: Math.PI,
        bool: true,
        string: "héllo ▁",
        strings: ["a", "", "ü"],
        i32s: [1, -2, 3],
        bools: [true, false],
      },
    );
    assert.equal(flat.general.alignment, 32);
    assert.deepEqual(
      info.tensorInfo?.map((t) => [t.name, t.dimensions.map(Number), t.offset]),
      [
        ["raw", [4, 2], 0],
        ["q", [64], 32],
      ],
    );
  });

  test("output does not depend on the streaming chunk size", async () => {
    const spec: GgufFileSpec = {
      metadata: { "general.architecture": gv.str("llama") },
      tensors: [
        ...(["f32", "f16", "q8_0", "q4_0"] as const).map((type, i) => ({
          name: `t${i}`,
          dims: [96, 7],
          type,
          data: createRandomFill(type, { seed: i, amplitude: 0.03 }),
        })),
        // An odd number of halves ends mid-word in the last chunk.
        { name: "odd", dims: [3, 45], type: "f16", data: createRandomFill("f16", { seed: 9, amplitude: 1 }) },
      ],
    };
    await writeGgufFile(file("big-chunks.gguf"), spec);
    await writeGgufFile(file("small-chunks.gguf"), spec, { chunkBytes: 100 });
    assert.equal(await sha256(file("small-chunks.gguf")), await sha256(file("big-chunks.gguf")));
  });

  test("a failing fill leaves neither the file nor its .tmp behind", async () => {
    const path = file("failing.gguf");
    const spec: GgufFileSpec = {
      metadata: {},
      tensors: [
        {
          name: "boom",
          dims: [32],
          type: "f32",
          data: () => {
            throw new Error("fill failed");
          },
        },
      ],
    };
    await assert.rejects(writeGgufFile(path, spec), /fill failed/);
    assert.deepEqual(
      (await readdir(dir)).filter((name) => name.startsWith("failing")),
      [],
    );
  });

  test("rejects quantized rows that are not whole blocks", () => {
    assert.throws(() => tensorByteSize("q8_0", [48, 2]), /multiple of 32/);
    assert.equal(tensorByteSize("q8_0", [64, 2]), 4 * 34);
    assert.equal(tensorByteSize("q4_0", [64, 2]), 4 * 18);
    assert.equal(tensorByteSize("f16", [3, 5]), 30);
  });
});

describe("synthetic llama vocabulary", () => {
  test("has exactly nVocab unique tokens with fixed special ids", () => {
    for (const nVocab of [LLAMA_SHAPES.tiny.nVocab, 32000]) {
      const vocab = buildLlamaVocab(nVocab);
      assert.equal(vocab.tokens.length, nVocab);
      assert.equal(new Set(vocab.tokens).size, nVocab);
      assert.equal(vocab.tokens[SPECIAL_IDS.imEnd], "<|im_end|>");
      assert.equal(vocab.tokens[SPECIAL_IDS.eos], "</s>");
      assert.equal(vocab.tokens[5 + 0x0a], "<0x0A>");
    }
  });
});

describe("tiny random llama models in llama.cpp", () => {
  test("f32 model: metadata reads back, loads, generates deterministically, tokenizes compactly", async () => {
    const path = file("tiny-f32.gguf");
    const { bytes } = await writeTinyLlamaModel(path);
    assert.ok(bytes < 2 * 1024 * 1024, `tiny model is ${bytes} bytes`);

    const info = await readGgufFileInfo(path, { logWarnings: false });
    assert.equal(info.metadata.general.architecture, "llama");
    const arch = info.architectureMetadata;
    assert.equal(arch.block_count, LLAMA_SHAPES.tiny.nLayer);
    assert.equal(arch.vocab_size, LLAMA_SHAPES.tiny.nVocab);
    assert.equal(arch.embedding_length, LLAMA_SHAPES.tiny.nEmbd);
    assert.equal(info.metadata.tokenizer.chat_template, undefined);
    assert.equal(Number(info.tensorCount), 3 + 9 * LLAMA_SHAPES.tiny.nLayer);

    const model = await llama.loadModel({ modelPath: path });
    try {
      const first = await complete(model, "Once upon a time");
      const second = await complete(model, "Once upon a time");
      assertGenerated(first, 16);
      assert.deepEqual(second.tokens, first.tokens);
      assert.equal(second.text, first.text);

      const sentence = "Once upon a time there was a little girl";
      const tokens = model.tokenize(sentence);
      assert.ok(tokens.length < Buffer.byteLength(sentence) / 2, `${tokens.length} tokens for ${sentence.length} bytes`);
    } finally {
      await model.dispose();
    }
  });

  test("chat model: ChatML template resolves and <|im_end|> is the EOS control token", async () => {
    const path = file("tiny-chat.gguf");
    await writeTinyLlamaModel(path, { chat: true });
    const info = await readGgufFileInfo(path, { logWarnings: false });
    assert.match(String(info.metadata.tokenizer.chat_template), /<\|im_start\|>/);

    const model = await llama.loadModel({ modelPath: path });
    const context = await model.createContext({ contextSize: 512, threads: 1 });
    try {
      const eos = model.tokens.eos;
      assert.ok(eos !== null);
      assert.equal(eos, SPECIAL_IDS.imEnd);
      assert.equal(model.tokens.eosString, "<|im_end|>");
      assert.ok(model.isEogToken(eos));
      assert.ok(model.getTokenAttributes(eos).control);
      assert.deepEqual(model.tokenize("<|im_end|>", true), [SPECIAL_IDS.imEnd]);

      const chat = new LlamaChat({ contextSequence: context.getSequence() });
      assert.ok(chat.chatWrapper instanceof ChatMLChatWrapper, `resolved ${chat.chatWrapper.constructor.name}`);
      const result = await chat.generateResponse([{ type: "user", text: "Hello! Tell me a story." }], { maxTokens: 12, temperature: 0 });
      assert.ok(["maxTokens", "eogToken"].includes(result.metadata.stopReason));
      assert.ok(result.response.length > 0 || result.metadata.stopReason === "eogToken");
    } finally {
      await context.dispose();
      await model.dispose();
    }
  });

  for (const weightType of ["q8_0", "q4_0", "f16"] as const) {
    test(`${weightType} model loads and generates`, async () => {
      const path = file(`tiny-${weightType}.gguf`);
      await writeTinyLlamaModel(path, { weightType });
      const info = await readGgufFileInfo(path, { logWarnings: false });
      assert.equal(info.tensorInfo?.find((t) => t.name === "blk.0.attn_q.weight")?.ggmlType, { q8_0: 8, q4_0: 2, f16: 1 }[weightType]);
      const model = await llama.loadModel({ modelPath: path });
      try {
        assertGenerated(await complete(model, "The little dog", 8), 8);
      } finally {
        await model.dispose();
      }
    });
  }

  test("same seed gives identical bytes, a different seed does not", async () => {
    await writeTinyLlamaModel(file("seed-a.gguf"), { seed: 7, weightType: "q8_0" });
    await writeTinyLlamaModel(file("seed-b.gguf"), { seed: 7, weightType: "q8_0" });
    await writeTinyLlamaModel(file("seed-c.gguf"), { seed: 8, weightType: "q8_0" });
    const [a, b, c] = await Promise.all(["seed-a", "seed-b", "seed-c"].map((name) => sha256(file(`${name}.gguf`))));
    assert.equal(a, b);
    assert.notEqual(a, c);
  });
});

describe("broken model files fail cleanly", () => {
  test("truncated data, truncated header, bad magic and non-GGUF text all reject", async () => {
    const source = file("trunc-source.gguf");
    await writeTinyLlamaModel(source);
    await writeTruncatedCopy(source, file("trunc-data.gguf"), 0.5);
    const { bytes: headerBytes } = await writeTruncatedCopy(source, file("trunc-header.gguf"), 0.005);
    assert.ok(headerBytes > 0);
    await writeBadMagicFile(file("bad-magic.gguf"));
    await writeNotGgufFile(file("not-gguf.gguf"));

    // llama.cpp logs these failures at error level before throwing; the noise is expected.
    // (readGgufFileInfo is no validator: it reads past EOF as zeros without throwing.)
    await assert.rejects(llama.loadModel({ modelPath: file("trunc-data.gguf") }));
    await assert.rejects(llama.loadModel({ modelPath: file("trunc-header.gguf") }));
    await assert.rejects(llama.loadModel({ modelPath: file("bad-magic.gguf") }), /Invalid GGUF magic/);
    await assert.rejects(llama.loadModel({ modelPath: file("not-gguf.gguf") }), /Invalid GGUF magic/);

    // The process is still healthy enough to load a good model afterwards.
    const model = await llama.loadModel({ modelPath: source });
    await model.dispose();
  });
});

describe("realistic shapes", () => {
  test("100m q4_0 writes with the expected size and tensor count", async () => {
    const path = file("100m-q4_0.gguf");
    const shape = LLAMA_SHAPES["100m"];
    try {
      const { bytes, paramCount } = await writeLlamaModel(path, { shape, weightType: "q4_0", seed: 1, name: "bench-100m" });
      assert.equal(paramCount, llamaParamCount(shape));
      const expected = (paramCount * 18) / 32; // Q4_0: 18 bytes per 32 weights
      assert.ok(Math.abs(bytes - expected) / expected < 0.03, `${bytes} bytes vs ~${expected} expected`);
      assert.equal((await stat(path)).size, bytes);
      const info = await readGgufFileInfo(path, { logWarnings: false });
      assert.equal(Number(info.tensorCount), 3 + 9 * shape.nLayer);
      assert.equal(info.metadata.general.file_type, 2);
    } finally {
      await rm(path, { force: true });
    }
  });
});
