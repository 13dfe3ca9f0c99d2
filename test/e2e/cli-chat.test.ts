/**
 * `lmx chat` in a real terminal: a detached tmux session runs the CLI under a pseudo-terminal, the test types
 * two turns and reads the screen while the answers stream. History is shown to be kept by the server's own
 * token counts (--verbose): the second turn's prompt holds the first question and answer.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import path from "node:path";
import { after, before, test, type TestContext } from "node:test";
import { PROJECT_ROOT, testModel } from "../helpers/models.js";
import { startTestServer, waitFor, type TestServer } from "../helpers/server.js";

const CLI = path.join(PROJECT_ROOT, "dist", "src", "cli", "main.js");
const API_KEY = "api-key-for-chat-tests";
const SOCKET = `lmx-chat-test-${process.pid}`;
const TMUX_MISSING = "tmux is not installed: apt-get install -y tmux";

let server: TestServer;

const hasTmux = () => spawnSync("tmux", ["-V"]).status === 0;

function tmux(...args: string[]): string {
  const result = spawnSync("tmux", ["-L", SOCKET, "-f", "/dev/null", ...args], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`tmux ${args.join(" ")} failed: ${result.stderr}`);
  return result.stdout;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * A detached 160×50 terminal running `lmx chat`. The shell around it prints the exit status on screen: tmux's
 * own #{pane_dead_status} is unreliable when its server was started from a Node process (the child can stay a
 * zombie, never reaped).
 */
function startChat(session: string, extraArgs: string[]): void {
  const argv = [process.execPath, CLI, "chat", "--url", server.url, "--api-key", API_KEY, ...extraArgs];
  tmux(
    "new-session",
    "-d",
    "-s",
    session,
    "-x",
    "160",
    "-y",
    "50",
    `${argv.map(shellQuote).join(" ")}; echo "[lmx exited with status $?]"`,
    ";",
    "set-option",
    "-t",
    session,
    "remain-on-exit",
    "on",
  );
}

const screen = (session: string) => tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", session);
const exitStatus = (session: string) => /\[lmx exited with status (\d+)\]/.exec(screen(session))?.[1] ?? null;

function typeLine(session: string, text: string): void {
  tmux("send-keys", "-t", session, "-l", text);
  tmux("send-keys", "-t", session, "Enter");
}

/**
 * Types a turn and samples the screen until its usage line appears. Returns the distinct partial answers seen
 * before that (more than one means the answer was drawn while it streamed) and the usage numbers.
 */
async function turn(
  session: string,
  text: string,
  turnIndex: number,
): Promise<{ partials: number; prompt: number; completion: number; answer: string }> {
  typeLine(session, text);
  const seen = new Set<string>();
  const usage = /\[model chat · [^\]]*?(\d+) prompt tokens \((\d+) cached\) · (\d+) completion tokens/g;
  let final = "";
  await waitFor(
    () => {
      const now = screen(session);
      const at = now.lastIndexOf(`> ${text}`);
      if (at < 0) return false;
      const after = now.slice(at + text.length + 2);
      const done = [...now.matchAll(usage)].length > turnIndex;
      if (!done) {
        const partial = after.trim();
        if (partial) seen.add(partial);
        return false;
      }
      final = now;
      return true;
    },
    20_000,
    `the answer to "${text}"`,
  );
  const match = [...final.matchAll(usage)][turnIndex]!;
  const at = final.lastIndexOf(`> ${text}`);
  const answer = final.slice(at + text.length + 2, final.indexOf("[model chat", at)).trim();
  return { partials: seen.size, prompt: Number(match[1]), completion: Number(match[3]), answer };
}

function requireTmux(t: TestContext): boolean {
  if (hasTmux()) return true;
  // CI must run this test; elsewhere a missing tmux only skips it
  if (process.env["CI"]) assert.fail(`CI needs tmux for the terminal test of lmx chat (${TMUX_MISSING})`);
  t.skip(TMUX_MISSING);
  return false;
}

before(async () => {
  const chat = await testModel("stories260K-chatml.gguf");
  // a per-token delay long enough for the screen to be sampled mid-answer
  process.env["LMX_ENABLE_FAULT_INJECTION"] = "1";
  process.env["LMX_FAULT_INJECTION"] = JSON.stringify({ tokenDelayMs: 25 });
  server = await startTestServer({ models: [{ id: "chat", path: chat.path }], auto_load: ["chat"], demo_model: false, api_keys: [API_KEY] });
  await waitFor(async () => (await fetch(`${server.url}/readyz`)).status === 200, 20_000, "auto_load of the chat model");
});

after(async () => {
  if (hasTmux()) spawnSync("tmux", ["-L", SOCKET, "kill-server"]);
  await server?.stop();
});

test("lmx chat in a terminal streams two answers, keeps the history, and /exit ends it", async (t) => {
  if (!requireTmux(t)) return;
  startChat("turns", ["--model", "chat", "--max-tokens", "24", "--temperature", "0", "--verbose"]);
  await waitFor(() => /chatting with chat[\s\S]*^>\s*$/m.test(screen("turns")), 10_000, "the chat prompt");

  const first = await turn("turns", "Tell me a story.", 0);
  const second = await turn("turns", "Tell me more now.", 1);
  for (const [name, answer] of [
    ["first", first],
    ["second", second],
  ] as const) {
    assert.ok(answer.answer.length > 0, `the ${name} answer is on screen`);
    assert.ok(answer.partials >= 2, `the ${name} answer was seen growing (${answer.partials} distinct partial screens)`);
  }
  // The two questions are about as long, so without history the second prompt would be about as long as the
  // first. It is longer by at least a good part of the first answer: question and answer were sent again.
  assert.ok(
    second.prompt >= first.prompt + Math.max(4, Math.floor(first.completion / 2)),
    `second prompt ${second.prompt} tokens vs first ${first.prompt} + its answer ${first.completion}`,
  );

  typeLine("turns", "/exit");
  await waitFor(() => exitStatus("turns") !== null, 10_000, "lmx chat to exit");
  assert.equal(exitStatus("turns"), "0");
});

test("lmx chat ends on Ctrl-D at the prompt", async (t) => {
  if (!requireTmux(t)) return;
  startChat("eof", ["--model", "chat"]);
  await waitFor(() => /^>\s*$/m.test(screen("eof")), 10_000, "the chat prompt");
  tmux("send-keys", "-t", "eof", "C-d");
  await waitFor(() => exitStatus("eof") !== null, 10_000, "lmx chat to exit on Ctrl-D");
  assert.equal(exitStatus("eof"), "0");
});

test("lmx chat without a terminal reads turns from stdin until end of input", async () => {
  const child = spawn(process.execPath, [CLI, "chat", "--url", server.url, "--api-key", API_KEY, "--max-tokens", "8", "--verbose"], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  child.stdin.end("Hello there.\nAnd again.\n");
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  assert.equal(code, 0, stderr);
  assert.match(stderr, /chatting with chat \(the first loaded chat model\)/);
  const prompts = [...stderr.matchAll(/(\d+) prompt tokens/g)].map((m) => Number(m[1]));
  assert.equal(prompts.length, 2, stderr);
  assert.ok(prompts[1]! > prompts[0]!, `history grows the prompt: ${prompts.join(" → ")}`);
  assert.ok(stdout.trim().split("\n").length >= 2, stdout);
});
