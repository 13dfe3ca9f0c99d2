import assert from "node:assert/strict";
import { test } from "node:test";
import { LmxError, toHttp } from "../../src/errors/codes.js";
import { withRetryAfter } from "../../src/serving/relay.js";

test("a runner's Retry-After survives the process boundary with its error", () => {
  const error = withRetryAfter(new LmxError("runner_busy", "all sequences of this runner stayed busy"), "3");
  assert.equal(toHttp(error).headers["retry-after"], "3");
});

test("a retryable 503 without Retry-After gets one; a client error never does", () => {
  assert.equal(toHttp(withRetryAfter(new LmxError("runner_busy", "busy"), undefined)).headers["retry-after"], "1");
  assert.equal(toHttp(withRetryAfter(new LmxError("context_length_exceeded", "too long"), undefined)).headers["retry-after"], undefined);
});
