#!/usr/bin/env node
// What the gateway adds to a request: the same request sent alternately to a runner's Unix socket (no gateway),
// through a bare 20-line Node.js proxy to that socket (the floor for any Node.js hop), and through the gateway.
// Usage (a server running with one model loaded; the runner socket is the r-*.sock in the gateway's temp folder):
//   node scripts/bench/gateway-overhead.mjs --url http://127.0.0.1:1234 --model stories260K [--socket PATH] [--n 200]
// Prints the median of a 1-token completion and of the first streamed token (TTFT) for each path.
import http from "node:http";
import { readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Pool } from "undici";

const { values } = parseArgs({
  options: { url: { type: "string" }, model: { type: "string" }, socket: { type: "string" }, n: { type: "string", default: "200" } },
});
if (!values.url || !values.model) {
  console.error("usage: gateway-overhead.mjs --url URL --model ID [--socket PATH] [--n N]");
  process.exit(2);
}
function findSocket() {
  const tmp = os.tmpdir();
  const found = [];
  for (const dir of readdirSync(tmp).filter((d) => d.startsWith("lmx-"))) {
    try {
      for (const f of readdirSync(path.join(tmp, dir))) if (/^r-[0-9a-f]+\.sock$/.test(f)) found.push(path.join(tmp, dir, f));
    } catch {
      // not ours or gone
    }
  }
  if (found.length !== 1) throw new Error(`found ${found.length} runner sockets in ${tmp}; pass --socket`);
  return found[0];
}
const socket = values.socket ?? findSocket();
const runner = new Pool("http://runner", { socketPath: socket });
const bare = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const up = await runner.request({
    path: req.url,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(JSON.parse(Buffer.concat(chunks).toString())),
  });
  res.writeHead(up.statusCode, { "content-type": String(up.headers["content-type"]) });
  for await (const c of up.body) res.write(c);
  res.end();
});
await new Promise((r) => bare.listen(0, "127.0.0.1", r));
const paths = { runner, bare: new Pool(`http://127.0.0.1:${bare.address().port}`), gateway: new Pool(values.url) };
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function once(pool, stream, i) {
  const body = JSON.stringify({ model: values.model, prompt: `${i} Once upon a time`, max_tokens: stream ? 8 : 1, temperature: 0, stream });
  const t0 = performance.now();
  const res = await pool.request({ path: "/v1/completions", method: "POST", headers: { "content-type": "application/json" }, body });
  let first = 0;
  for await (const chunk of res.body) if (!first && (!stream || chunk.toString().includes('"text":"'))) first = performance.now();
  return stream ? first - t0 : performance.now() - t0;
}
const n = Number(values.n);
const results = {};
for (const stream of [false, true]) {
  for (const name of Object.keys(paths)) results[`${name} ${stream ? "ttft" : "1-token"}`] = [];
  for (let i = 0; i < n; i++)
    for (const [name, pool] of Object.entries(paths)) results[`${name} ${stream ? "ttft" : "1-token"}`].push(await once(pool, stream, i));
}
for (const [key, xs] of Object.entries(results)) console.log(`${key.padEnd(16)} p50 ${median(xs).toFixed(3)} ms`);
for (const kind of ["1-token", "ttft"]) {
  const base = median(results[`runner ${kind}`]);
  console.log(
    `${kind}: bare proxy adds ${(median(results[`bare ${kind}`]) - base).toFixed(3)} ms, gateway adds ${(median(results[`gateway ${kind}`]) - base).toFixed(3)} ms`,
  );
}
process.exit(0);
