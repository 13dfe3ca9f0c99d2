/** A runner's runner_busy reaches the client with its Retry-After, through the gateway's relay. */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import type { FastifyReply } from "fastify";
import { Pool } from "undici";
import type { RunnerHandle } from "../../src/engines/backend.js";
import { LmxError, toHttp } from "../../src/errors/codes.js";
import { sendError } from "../../src/runner/internal-http.js";
import { forwardToRunner } from "../../src/serving/relay.js";

let runner: http.Server;
let pool: Pool;

before(async () => {
  // answers as a runner does when every sequence stayed busy
  runner = http.createServer((_req, res) => sendError(res, new LmxError("runner_busy", "all sequences stayed busy", { retryAfterSec: 1 })));
  await new Promise<void>((r) => runner.listen(0, "127.0.0.1", r));
  pool = new Pool(`http://127.0.0.1:${(runner.address() as AddressInfo).port}`);
});
after(async () => {
  await pool.close();
  runner.close();
});

test("runner_busy from the runner keeps its Retry-After in the gateway's answer", async () => {
  const handle = { dispatcher: pool, exited: new Promise(() => {}) } as unknown as RunnerHandle;
  const error = await forwardToRunner({} as FastifyReply, {
    runner: handle,
    path: "/v1/chat/completions",
    body: {},
    requestId: "req-1",
    stream: false,
    signal: new AbortController().signal,
    extraHeaders: {},
    runnerHeaders: {},
    recorder: null,
  }).then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(error instanceof LmxError, String(error));
  assert.equal(error.code, "runner_busy");
  const wire = toHttp(error);
  assert.equal(wire.status, 503);
  assert.equal(wire.headers["retry-after"], "1");
});
