import assert from "node:assert/strict";
import { test } from "node:test";
import { IncrementalDetokenizer, StopStringMatcher } from "../../src/engines/llama-cpp/text-stream.js";

// A toy byte-level "model": each token is one byte, decoded as UTF-8 (incomplete sequences become U+FFFD).
const decode = (tokens: readonly number[]) => Buffer.from(tokens).toString("utf8");

test("multi-byte characters are held until complete", () => {
  const d = new IncrementalDetokenizer<number>((tokens) => decode(tokens));
  const bytes = [...Buffer.from("añ€😀!")];
  const out = bytes.map((b) => d.push(b));
  assert.equal(out.join("") + d.flush(), "añ€😀!");
  assert.ok(
    out.every((piece) => !piece.includes("\uFFFD")),
    "no half characters were emitted",
  );
  assert.equal(out.filter((p) => p !== "").length, 5, "one piece per character");
});

test("really invalid bytes are emitted after 4 tokens instead of stalling the stream", () => {
  const d = new IncrementalDetokenizer<number>((tokens) => decode(tokens));
  const out = [0xf0, 0x9f, 0x98, 0x41].map((b) => d.push(b)).join("");
  assert.ok(out.endsWith("A"));
});

test("stop strings cut exactly and text that may start one is held", () => {
  const m = new StopStringMatcher(["END", "\n\n"]);
  assert.deepEqual(m.push("hello E"), { emit: "hello ", stopped: false });
  assert.deepEqual(m.push("N"), { emit: "", stopped: false });
  assert.deepEqual(m.push("Dx"), { emit: "", stopped: true, word: "END" });
});

test("held text is released when it turns out not to be a stop string", () => {
  const m = new StopStringMatcher(["END"]);
  assert.deepEqual(m.push("EN"), { emit: "", stopped: false });
  assert.deepEqual(m.push("x"), { emit: "ENx", stopped: false });
  assert.deepEqual(m.push("E"), { emit: "", stopped: false });
  assert.equal(m.flush(), "E");
});

test("the earliest stop wins when several match", () => {
  const m = new StopStringMatcher(["cd", "b"]);
  assert.deepEqual(m.push("abcd"), { emit: "a", stopped: true, word: "b" });
});

test("no stop strings: everything passes straight through", () => {
  const m = new StopStringMatcher([]);
  assert.deepEqual(m.push("abc"), { emit: "abc", stopped: false });
});
