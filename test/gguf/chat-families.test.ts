import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LlamaLogLevel, getLlama, readGgufFileInfo, type Llama } from "node-llama-cpp";
import { CHAT_FAMILY_FIXTURES, CHAT_FAMILY_NAMES, writeChatFamilyModel } from "../../src/gguf/chat-families.js";
import { LLAMA_SHAPES, buildLlamaVocab, writeLlamaModel } from "../../src/gguf/llama-model.js";

let dir: string;
let llama: Llama;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "lmx-chat-families-"));
  llama = await getLlama({ gpu: false, maxThreads: 1, build: "never", logLevel: LlamaLogLevel.error });
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  await llama?.dispose();
});

describe("chat family fixtures", { timeout: 120_000 }, () => {
  test("marker tokens take the last ids; every other id is the plain model's", () => {
    const plain = buildLlamaVocab(LLAMA_SHAPES.tiny.nVocab);
    const extra = [
      { text: "<|a|>", type: 3 },
      { text: "<b>", type: 4 },
    ];
    const family = buildLlamaVocab(LLAMA_SHAPES.tiny.nVocab, extra);
    assert.equal(family.tokens.length, plain.tokens.length);
    assert.deepEqual(family.tokens.slice(0, -2), plain.tokens.slice(0, -2));
    assert.deepEqual(family.tokens.slice(-2), ["<|a|>", "<b>"]);
    assert.deepEqual([...family.types.slice(-2)], [3, 4]);
  });

  for (const name of CHAT_FAMILY_NAMES) {
    test(`${name}: node-llama-cpp loads it; each marker is one token; EOS and extra EOG tokens end generation`, async () => {
      const fixture = CHAT_FAMILY_FIXTURES[name];
      const path = join(dir, `${name}.gguf`);
      await writeChatFamilyModel(path, name, { weightType: "q8_0" });
      const info = await readGgufFileInfo(path, { logWarnings: false });
      const tokenizer = info.metadata.tokenizer as unknown as { chat_template: string; ggml: { eos_token_id: number; bos_token_id: number } };
      assert.equal(tokenizer.chat_template, fixture.jinja);
      const model = await llama.loadModel({ modelPath: path });
      try {
        for (const text of [...fixture.specialTokens, ...(fixture.textTokens ?? [])]) {
          const tokens = model.tokenize(text, true);
          assert.equal(tokens.length, 1, `${text} is ${tokens.length} tokens`);
          assert.equal(model.detokenize(tokens, true), text);
        }
        const one = (text: string): number => model.tokenize(text, true)[0]!;
        assert.equal(tokenizer.ggml.eos_token_id, one(fixture.eosToken));
        assert.equal(tokenizer.ggml.bos_token_id, one(fixture.bosToken ?? "<s>"));
        for (const text of [fixture.eosToken, ...(fixture.extraEogTokens ?? [])])
          assert.ok(model.isEogToken(model.tokenize(text, true)[0]), `${text} ends generation`);
      } finally {
        await model.dispose();
      }
    });
  }

  test("a family template cannot name an end token it does not add", async () => {
    await assert.rejects(
      writeLlamaModel(join(dir, "bad.gguf"), {
        shape: LLAMA_SHAPES.tiny,
        weightType: "f32",
        seed: 1,
        name: "bad",
        chatTemplate: { jinja: "x", specialTokens: ["<a>"], eosToken: "<missing>" },
      }),
      /<missing>.* is not in the vocabulary/,
    );
  });
});
