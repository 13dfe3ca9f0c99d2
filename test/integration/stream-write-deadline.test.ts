/**
 * A client that stops reading a streamed answer must not hold its model sequence until it disconnects: once the
 * socket buffers are full and nothing drains for stream_write_timeout_sec, the answer is cut, the runner request
 * aborted, and the sequence serves the next request.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, test } from "node:test";
import { getJson, startTestServer, waitFor, type TestServer } from "../helpers/server.js";
import { testModel } from "../helpers/models.js";

let server: TestServer;

before(async () => {
  server = await startTestServer({
    stream_write_timeout_sec: 1,
    // one sequence: a held sequence would make the next request wait
    models: [{ id: "m", path: (await testModel("stories260K.gguf")).path, context_size: 32768, parallel: 1, threads: 1 }],
  });
});
after(() => server?.stop());

async function writeTimeouts(): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith('lmx:stream_write_timeouts_total{model="m"}'));
  return line ? Number(line.split(" ").pop()) : 0;
}

test("a streaming client that never reads is cut after stream_write_timeout_sec and its sequence is freed", async () => {
  const body = JSON.stringify({ model: "m", prompt: "Once upon a time", max_tokens: 30000, ignore_eos: true, stream: true });
  const accepted: net.Socket[] = [];
  const onConnection = (socket: net.Socket) => accepted.push(socket);
  server.app.server.on("connection", onConnection);
  const client = net.connect(Number(new URL(server.url).port), "127.0.0.1");
  // never read: what the server writes piles up in the kernel's buffers, then in the gateway's
  client.pause();
  client.on("error", () => undefined);
  try {
    await new Promise<void>((resolve) => client.once("connect", () => resolve()));
    let serverSide: net.Socket | undefined;
    await waitFor(() => (serverSide = accepted.find((s) => s.remotePort === client.localPort)) !== undefined, 10_000, "the connection");
    // Full kernel buffers, without waiting for them: on loopback they take megabytes, which a 260K-parameter
    // model needs minutes to produce on a loaded machine. A corked socket looks the same to the gateway: write()
    // returns false and 'drain' does not come.
    serverSide!.cork();
    client.write(
      `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    await waitFor(async () => (await writeTimeouts()) === 1, 60_000, "the stalled stream to be cut");
    assert.ok(serverSide!.destroyed, "the client's connection was closed");
    // the sequence is free: nothing runs in the gateway, and the runner's one sequence answers the next request
    await waitFor(
      async () =>
        ((await getJson<{ queue: { per_model: Record<string, { running: number }> } }>(`${server.url}/admin/status`)).body.queue.per_model["m"]
          ?.running ?? 0) === 0,
      10_000,
      "the stalled request to leave the queue",
    );
    await waitFor(
      async () =>
        (await getJson<{ data: Array<{ stats: { slots_busy: number } | null }> }>(`${server.url}/admin/models/loaded`)).body.data[0]?.stats
          ?.slots_busy === 0,
      10_000,
      "the runner to free the sequence",
    );
    const next = await getJson<{ choices: Array<{ text: string }> }>(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", prompt: "Once upon a time", max_tokens: 8 }),
    });
    assert.equal(next.status, 200);
    assert.ok((next.body.choices[0]?.text ?? "").length > 0);
  } finally {
    server.app.server.off("connection", onConnection);
    client.destroy();
  }
});
