/**
 * The server-side tool loop on a real runner: a random-weight model with a Hermes template, `add` offered as a
 * `{"type":"skill"}` tool and forced with tool_choice, so the grammar writes a call whose arguments validate
 * whatever the weights. The server runs it (audited as `loop:<completion id>`), feeds the result back and
 * generates the final answer; streamed, the call and its result come before that answer.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { writeChatFamilyModel } from "../../src/gguf/chat-families.js";
import { getJson, startTestServer, type TestServer } from "../helpers/server.js";

interface Executed {
  id: string;
  name: string;
  arguments: string;
  ok: boolean;
  result: unknown;
  duration_ms: number;
}
interface Answer {
  id: string;
  choices: Array<{
    finish_reason: string;
    message: {
      content: string | null;
      tool_calls?: Array<{ id: string; function: { name: string; arguments: string } }>;
      executed_tool_calls: Executed[];
    };
  }>;
  usage: { prompt_tokens: number; completion_tokens: number };
}
interface ErrorBody {
  error: { code: string; param: string | null; message: string };
}

const ADD_SKILL = { type: "skill", skill: { name: "add" } };
const FORCE_ADD = { type: "function", function: { name: "add" } };
const MESSAGES = [{ role: "user", content: "What is 2 + 5?" }];

describe("server-side tool loop", { timeout: 300_000 }, () => {
  let server: TestServer;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "lmx-loop-"));
    const file = path.join(dir, "hermes.gguf");
    await writeChatFamilyModel(file, "hermes", { seed: 7 });
    server = await startTestServer({
      models: [{ id: "hermes", path: file, context_size: 2048, parallel: 1, threads: 1 }],
      skills: { allow_in_loop: ["add"], max_loop_steps: 3 },
    });
  });
  after(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const post = (body: Record<string, unknown>) =>
    fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      // max_tokens applies to each generation of the loop: the forced call's grammar bounds it to ~150 characters
      // (numbers at most 36), so 200 tokens always hold it; the final answer is the random model's text, cut there
      body: JSON.stringify({ model: "hermes", messages: MESSAGES, temperature: 0, seed: 3, max_tokens: 200, ...body }),
    });

  function auditRows(caller: string): Array<{ skill: string; outcome: string; caller: string }> {
    return server.ctx.storage.db.prepare("SELECT skill, outcome, caller FROM skill_audit WHERE caller = ?").all(caller) as Array<{
      skill: string;
      outcome: string;
      caller: string;
    }>;
  }

  function assertAddCall(call: Executed | undefined): void {
    assert.ok(call, "the forced call was executed");
    assert.equal(call.name, "add");
    assert.equal(call.ok, true, JSON.stringify(call));
    const args = JSON.parse(call.arguments) as { left: number; right: number };
    assert.equal(typeof args.left, "number");
    assert.equal(call.result, args.left + args.right);
    assert.ok(call.duration_ms >= 0);
  }

  test("forced add: the server runs it, the final message follows, executed_tool_calls and the audit row", async () => {
    const res = await post({ tools: [ADD_SKILL], tool_choice: FORCE_ADD });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    const answer = JSON.parse(text) as Answer;
    const choice = answer.choices[0]!;
    assert.ok(["stop", "length"].includes(choice.finish_reason), `finish_reason ${choice.finish_reason}`);
    assert.equal(choice.message.tool_calls, undefined, "a call the server ran is not the client's to run");
    assert.ok(choice.message.executed_tool_calls.length >= 1, text);
    assertAddCall(choice.message.executed_tool_calls[0]);
    assert.equal(typeof choice.message.content, "string");
    assert.ok(Number(res.headers.get("x-lmx-tool-loop-steps")) >= 2);
    // usage is the sum of the loop's generations: the second prompt holds the first
    assert.ok(answer.usage.prompt_tokens > 0 && answer.usage.completion_tokens > 0);

    const rows = auditRows(`loop:${answer.id}`);
    assert.equal(rows.length, choice.message.executed_tool_calls.length);
    assert.equal(rows[0]!.skill, "add");
    assert.equal(rows[0]!.outcome, "ok");
  });

  test("streamed: the call and its result come as executed_tool_calls chunks before the answer's content", async () => {
    const res = await post({ tools: [ADD_SKILL], tool_choice: FORCE_ADD, stream: true });
    assert.equal(res.status, 200);
    const text = await res.text();
    const chunks = text
      .split("\n\n")
      .filter((line) => line.startsWith("data: ") && line !== "data: [DONE]")
      .map((line) => JSON.parse(line.slice(6)) as { id: string; choices: Array<{ delta: Record<string, unknown>; finish_reason: string | null }> });
    assert.ok(text.trimEnd().endsWith("data: [DONE]"));
    const position = (predicate: (delta: Record<string, unknown>) => boolean) =>
      chunks.findIndex((c) => c.choices[0] && predicate(c.choices[0].delta));
    const parts = (c: (typeof chunks)[number]) => (c.choices[0]?.delta["executed_tool_calls"] as Array<Record<string, unknown>> | undefined) ?? [];
    const callAt = chunks.findIndex((c) => parts(c).some((p) => p["name"] === "add"));
    const resultAt = chunks.findIndex((c) => parts(c).some((p) => p["ok"] !== undefined));
    const finishAt = chunks.findIndex((c) => c.choices[0]?.finish_reason);
    assert.ok(callAt >= 0 && resultAt > callAt, `call at ${callAt}, result at ${resultAt}`);
    assert.ok(finishAt > resultAt);
    assert.ok(["stop", "length"].includes(chunks[finishAt]!.choices[0]!.finish_reason!));
    const firstContent = position((d) => typeof d["content"] === "string" && d["content"] !== "");
    if (firstContent >= 0) assert.ok(firstContent > resultAt, "the answer's text comes after the result");
    assert.equal(
      position((d) => d["tool_calls"] !== undefined),
      -1,
      "no client tool_calls",
    );
    // merged by index, the parts are the whole answer's entry
    const call = parts(chunks[callAt]!)[0]!;
    const result = parts(chunks[resultAt]!)[0]!;
    assert.equal(call["index"], result["index"]);
    assert.equal(call["id"], result["id"]);
    assertAddCall({ ...call, ...result } as unknown as Executed);
    assert.equal(auditRows(`loop:${chunks[0]!.id}`).length, 1);
  });

  test("a client function forced beside a skill: the loop stops and returns the call to the client", async () => {
    const lookup = {
      type: "function",
      function: { name: "lookup", parameters: { type: "object", properties: { city: { type: "string", enum: ["Paris"] } }, required: ["city"] } },
    };
    const res = await post({ tools: [ADD_SKILL, lookup], tool_choice: { type: "function", function: { name: "lookup" } } });
    const answer = (await res.json()) as Answer;
    assert.equal(res.status, 200);
    const choice = answer.choices[0]!;
    assert.equal(choice.finish_reason, "tool_calls");
    assert.equal(choice.message.tool_calls?.[0]?.function.name, "lookup");
    assert.deepEqual(choice.message.executed_tool_calls, []);
  });

  test("refusals name the tool: an unknown skill, a skill not allowed in the loop, n > 1", async () => {
    const unknown = await getJson<ErrorBody>(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "hermes", messages: MESSAGES, tools: [{ type: "skill", skill: { name: "no_such" } }] }),
    });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.error.param, "tools[0].skill.name");

    const forbidden = await getJson<ErrorBody>(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "hermes", messages: MESSAGES, tools: [ADD_SKILL, { type: "skill", skill: { name: "multiply" } }] }),
    });
    assert.equal(forbidden.status, 400);
    assert.equal(forbidden.body.error.param, "tools[1]");
    assert.match(forbidden.body.error.message, /allow_in_loop/);

    const several = await getJson<ErrorBody>(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "hermes", messages: MESSAGES, tools: [ADD_SKILL], n: 2 }),
    });
    assert.equal(several.status, 400);
    assert.equal(several.body.error.param, "n");
  });
});
