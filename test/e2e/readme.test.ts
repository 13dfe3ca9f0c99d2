/**
 * The README's client snippets run as pasted: the Node one saved as chat.mjs next to an installed `openai`, the
 * curl one in a shell, both against a real server serving the demo model. Only the address is changed.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { PROJECT_ROOT } from "../helpers/models.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const README = readFileSync(path.join(PROJECT_ROOT, "README.md"), "utf8");
const README_URL = "http://127.0.0.1:1234";
const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-readme-"));
let server: TestServer;

before(async () => {
  server = await startTestServer({ demo_model: true });
});
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a command without blocking this process, whose event loop serves the server. */
function run(command: string, args: string[], cwd: string = dir): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  const result = { status: null as number | null, stdout: "", stderr: "" };
  child.stdout.on("data", (b: Buffer) => (result.stdout += b.toString()));
  child.stderr.on("data", (b: Buffer) => (result.stderr += b.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  return new Promise((resolve) =>
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ ...result, status });
    }),
  );
}

/** The first fenced block of `lang` after `marker`. */
function snippet(marker: string, lang: string): string {
  const from = README.indexOf(marker);
  assert.ok(from >= 0, `README has ${marker}`);
  const block = new RegExp("```" + lang + "\\n([\\s\\S]*?)```").exec(README.slice(from));
  assert.ok(block?.[1], `a ${lang} block after ${marker}`);
  return block[1];
}

test("the Node snippet runs as chat.mjs where openai is installed, and prints the streamed answer", async () => {
  const code = snippet("<!-- readme-client-snippet", "js");
  assert.ok(code.includes(README_URL));
  writeFileSync(path.join(dir, "chat.mjs"), code.replaceAll(README_URL, server.url));
  // `npm install openai` in that folder, without the network: the project's own copy
  mkdirSync(path.join(dir, "node_modules"));
  symlinkSync(path.join(PROJECT_ROOT, "node_modules", "openai"), path.join(dir, "node_modules", "openai"));
  const node = await run(process.execPath, ["chat.mjs"]);
  assert.equal(node.status, 0, node.stderr);
  assert.ok(node.stdout.trim().length > 0, "it printed the answer");
});

test("the curl snippet answers with a chat completion", async () => {
  const blocks = [...README.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const command = blocks.find((b) => b.startsWith(`curl ${README_URL}/v1/chat/completions`));
  assert.ok(command, "the README's curl example");
  const curl = await run("sh", ["-c", command.replaceAll(README_URL, server.url)]);
  assert.equal(curl.status, 0, curl.stderr);
  const body = JSON.parse(curl.stdout) as { object: string; choices: Array<{ message: { content: string } }> };
  assert.equal(body.object, "chat.completion");
  assert.equal(typeof body.choices[0]?.message.content, "string");
});
