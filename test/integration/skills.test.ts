/**
 * Skills against a real gateway: the operators' four runbook calls verbatim, native and MCP-shaped results that
 * agree, hostile input (schema violations, 1 MB arguments, a command that sleeps past its timeout, one that
 * prints 50 MB, paths outside the allowed folders through `..` and a symlink), the audit rows, the metrics,
 * count_tokens on a real runner, an Agent Skills folder, and the `lmx skills` CLI.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { alive } from "../helpers/processes.js";
import { PROJECT_ROOT, testModel } from "../helpers/models.js";
import { showLogsOnFailure, startTestServer, waitFor, type TestServer } from "../helpers/server.js";

const run = promisify(execFile);
const NODE = process.execPath;
const CLI = path.join(PROJECT_ROOT, "dist", "src", "cli", "main.js");

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

/** A command skill's program: writes its pid (and its child's) first, so the test can see they are gone. */
const SLEEPER = `
const fs = require("fs"), cp = require("child_process");
const child = cp.spawn(process.execPath, ["-e", "setTimeout(() => {}, 120000)"], { stdio: "ignore" });
fs.writeFileSync(process.argv[1], JSON.stringify([process.pid, child.pid]));
setTimeout(() => {}, 120000);`;
const PRINTER = `
const fs = require("fs");
fs.writeFileSync(process.argv[1], JSON.stringify([process.pid]));
const chunk = Buffer.alloc(1 << 20, 120);
let written = 0;
(function write() {
  while (written < 50) {
    written++;
    if (!process.stdout.write(chunk)) return process.stdout.once("drain", write);
  }
  fs.writeFileSync(process.argv[2], "printed all 50 MB");
})();`;

describe("skills", { timeout: 180_000 }, () => {
  let server: TestServer;
  let work: string;
  let allowed: string;
  const files: Record<string, string> = {};

  before(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), "lmx-skills-"));
    allowed = path.join(work, "allowed");
    mkdirSync(allowed);
    writeFileSync(path.join(allowed, "notes.txt"), "inside the root\n");
    writeFileSync(path.join(work, "secret.txt"), "outside the root\n");
    symlinkSync(path.join(work, "secret.txt"), path.join(allowed, "link-out.txt"));
    symlinkSync(work, path.join(allowed, "parent-dir"));
    files["sleeperPid"] = path.join(work, "sleeper.pid");
    files["printerPid"] = path.join(work, "printer.pid");
    files["printerDone"] = path.join(work, "printer.done");
    const folders = path.join(work, "agent-skills");
    mkdirSync(path.join(folders, "echo"), { recursive: true });
    writeFileSync(
      path.join(folders, "echo", "SKILL.md"),
      `---\nname: echo_args\ndescription: Echoes its arguments back.\nparameters:\n  type: object\n  properties:\n    word: {type: string}\n  required: [word]\ncommand: ["./run.sh"]\n---\nRun me.\n`,
    );
    writeFileSync(path.join(folders, "echo", "run.sh"), `#!/bin/sh\nread -r line || true\nprintf '{"echo":%s}' "$line"\n`);
    chmodSync(path.join(folders, "echo", "run.sh"), 0o755);
    mkdirSync(path.join(folders, "style-guide"));
    writeFileSync(path.join(folders, "style-guide", "SKILL.md"), `---\nname: style_guide\ndescription: How we write.\n---\nWrite short sentences.\n`);
    mkdirSync(path.join(folders, "broken"));
    writeFileSync(path.join(folders, "broken", "SKILL.md"), `no front matter here\n`);
    const model = await testModel("stories260K.gguf");
    server = await startTestServer({
      demo_model: false,
      models: [{ id: "tiny", path: model.path, context_size: 256, parallel: 1 }],
      skills: {
        files: { roots: [allowed] },
        folders: [folders],
        commands: [
          { name: "sleeper", description: "sleeps past its timeout", command: [NODE, "-e", SLEEPER, files["sleeperPid"]], timeout_ms: 3000 },
          {
            name: "printer",
            description: "prints 50 MB",
            command: [NODE, "-e", PRINTER, files["printerPid"], files["printerDone"]],
            timeout_ms: 60_000,
          },
          { name: "fails", description: "exits 3", command: [NODE, "-e", "process.stderr.write('boom'); process.exit(3)"] },
          {
            name: "upper",
            description: "upper-cases a text",
            command: [
              NODE,
              "-e",
              "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.stringify({text:JSON.parse(s).text.toUpperCase()})))",
            ],
            parameters: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
            output_schema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
          },
        ],
      },
    });
  });

  after(async () => {
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const post = async (pathname: string, body: string) => {
    const res = await fetch(`${server.url}${pathname}`, { method: "POST", headers: { "Content-Type": "application/json" }, body });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const execute = (name: string, args: unknown) => post(`/v1/skills/${name}/execute`, JSON.stringify({ arguments: args }));

  test("the four runbook calls, verbatim, and native and MCP results agree", () =>
    showLogsOnFailure(server, async () => {
      const list = await fetch(`${server.url}/v1/skills`);
      assert.equal(list.status, 200);
      const listed = (await list.json()) as {
        object: string;
        data: Array<{ name: string; source: string; allow_in_loop: boolean }>;
        sources: Array<{ kind: string; ok: boolean }>;
      };
      assert.equal(listed.object, "list");
      assert.ok(listed.data.length > 0);
      const names = listed.data.map((s) => s.name);
      for (const name of [
        "add",
        "subtract",
        "multiply",
        "divide",
        "datetime_now",
        "unit_convert",
        "json_query",
        "count_tokens",
        "read_file",
        "sleeper",
        "echo_args",
        "style_guide",
      ])
        assert.ok(names.includes(name), `${name} listed`);
      assert.equal(listed.data.find((s) => s.name === "add")?.allow_in_loop, true);
      assert.equal(listed.data.find((s) => s.name === "read_file")?.allow_in_loop, false);
      // the folder with a broken SKILL.md is reported, the others still load
      assert.ok(listed.sources.some((s) => s.kind === "folder" && !s.ok));

      const tools = (await (await fetch(`${server.url}/v1/skills/mcp/tools`)).json()) as {
        tools: Array<{ name: string; inputSchema: { type: string }; outputSchema?: { type: string } }>;
      };
      assert.deepEqual(
        tools.tools.map((t) => t.name),
        names,
      );
      const addTool = tools.tools.find((t) => t.name === "add");
      assert.equal(addTool?.inputSchema.type, "object");
      assert.equal(addTool?.outputSchema?.type, "object");

      const native = await post("/v1/skills/add/execute", '{"arguments":{"left":2,"right":5}}');
      assert.equal(native.status, 200);
      assert.equal(native.body["name"], "add");
      assert.equal(native.body["ok"], true);
      assert.equal(native.body["result"], 7);
      assert.equal(typeof native.body["duration_ms"], "number");

      const mcp = await post("/v1/skills/mcp/call", '{"name":"add","arguments":{"left":2,"right":5}}');
      assert.equal(mcp.status, 200);
      assert.equal(mcp.body["isError"], false);
      const content = mcp.body["content"] as Array<{ type: string; text: string }>;
      assert.equal(content[0]?.type, "text");
      assert.deepEqual(JSON.parse(content[0]!.text), native.body["result"]);
      assert.deepEqual(mcp.body["structuredContent"], { result: native.body["result"] });

      // an object result is the structured content itself
      const upper = await post("/v1/skills/mcp/call", JSON.stringify({ name: "upper", arguments: { text: "abc" } }));
      assert.deepEqual(upper.body["structuredContent"], { text: "ABC" });
      assert.deepEqual((await execute("upper", { text: "abc" })).body["result"], { text: "ABC" });
    }));

  test("GET /v1/skills/{name}, unknown skills and the other built-ins", async () => {
    const one = await fetch(`${server.url}/v1/skills/add`);
    assert.equal(one.status, 200);
    assert.equal(((await one.json()) as { name: string }).name, "add");
    const missing = await fetch(`${server.url}/v1/skills/no_such_skill`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as ErrorBody).error.code, "skill_not_found");
    const unknown = await execute("no_such_skill", {});
    assert.equal(unknown.status, 404);
    assert.equal((unknown.body as unknown as ErrorBody).error.code, "skill_not_found");

    assert.equal((await execute("divide", { left: 1, right: 4 })).body["result"], 0.25);
    const byZero = await execute("divide", { left: 1, right: 0 });
    assert.equal(byZero.status, 400);
    assert.equal((byZero.body as unknown as ErrorBody).error.param, "arguments.right");
    const byZeroMcp = await post("/v1/skills/mcp/call", JSON.stringify({ name: "divide", arguments: { left: 1, right: 0 } }));
    assert.equal(byZeroMcp.body["isError"], true);
    assert.deepEqual((await execute("unit_convert", { value: 1, from: "mi", to: "km" })).body["result"], { value: 1.609344, unit: "km" });
    assert.deepEqual((await execute("json_query", { document: { a: [{ b: 1 }, { b: 2 }] }, path: "$.a[*].b" })).body["result"], { matches: [1, 2] });
    const now = (await execute("datetime_now", { time_zone: "Asia/Tokyo" })).body["result"] as { utc_offset: string; time_zone: string };
    assert.equal(now.utc_offset, "+09:00");
    assert.equal((await execute("datetime_now", { time_zone: "Mars/Olympus" })).status, 400);
  });

  test("count_tokens asks the model's own tokenizer through a lease", { timeout: 120_000 }, () =>
    showLogsOnFailure(server, async () => {
      const plain = await execute("count_tokens", { model: "tiny", text: "Once upon a time" });
      assert.equal(plain.status, 200, JSON.stringify(plain.body));
      const counted = plain.body["result"] as { model: string; tokens: number };
      assert.equal(counted.model, "tiny");
      assert.ok(Number.isInteger(counted.tokens) && counted.tokens > 0);
      const longer = (await execute("count_tokens", { model: "tiny", text: "Once upon a time ".repeat(4) })).body["result"] as { tokens: number };
      assert.ok(longer.tokens > counted.tokens);
      const empty = (await execute("count_tokens", { model: "tiny", text: "" })).body["result"] as { tokens: number };
      assert.equal(empty.tokens, 0);
      const unknownModel = await execute("count_tokens", { model: "nope", text: "x" });
      assert.equal(unknownModel.status, 404);
      assert.equal((unknownModel.body as unknown as ErrorBody).error.param, "arguments.model");
    }),
  );

  test("arguments that violate the schema are 400 naming the field; 1 MB of arguments is 413", async () => {
    const cases: Array<[unknown, string]> = [
      [{ left: "2", right: 5 }, "arguments.left"],
      [{ right: 5 }, "arguments.left"],
      [{ left: 2, right: 5, extra: true }, "arguments.extra"],
    ];
    for (const [args, param] of cases) {
      const answer = await execute("add", args);
      assert.equal(answer.status, 400, JSON.stringify(args));
      const error = (answer.body as unknown as ErrorBody).error;
      assert.equal(error.code, "invalid_value");
      assert.equal(error.param, param);
    }
    const notObject = await post("/v1/skills/add/execute", '{"arguments":[2,5]}');
    assert.equal(notObject.status, 400);
    assert.equal((notObject.body as unknown as ErrorBody).error.param, "arguments");
    const strayField = await post("/v1/skills/add/execute", '{"arguments":{"left":2,"right":5},"args":1}');
    assert.equal(strayField.status, 400);
    assert.equal((strayField.body as unknown as ErrorBody).error.param, "args");

    const big = JSON.stringify({ arguments: { left: 2, right: 5, padding: "x".repeat(1024 * 1024) } });
    const tooLarge = await post("/v1/skills/add/execute", big);
    assert.equal(tooLarge.status, 413);
    assert.equal((tooLarge.body as unknown as ErrorBody).error.code, "request_too_large");
    const tooLargeMcp = await post(
      "/v1/skills/mcp/call",
      JSON.stringify({ name: "add", arguments: { left: 2, right: 5, padding: "x".repeat(1024 * 1024) } }),
    );
    assert.equal(tooLargeMcp.status, 413);
  });

  test("a command that sleeps past its timeout is 504 skill_timeout, and it and its child are gone", () =>
    showLogsOnFailure(server, async () => {
      const answer = await execute("sleeper", {});
      assert.equal(answer.status, 504);
      assert.equal((answer.body as unknown as ErrorBody).error.code, "skill_timeout");
      const pids = JSON.parse(readFileSync(files["sleeperPid"]!, "utf8")) as number[];
      assert.equal(pids.length, 2);
      await waitFor(() => pids.every((pid) => !alive(pid)), 10_000, "the sleeper and its child to be gone");
      // the gateway still answers
      assert.equal((await execute("add", { left: 1, right: 1 })).body["result"], 2);
    }));

  test("a command that prints 50 MB is stopped at the output cap: a clean error, nothing left running", () =>
    showLogsOnFailure(server, async () => {
      const answer = await execute("printer", {});
      assert.equal(answer.status, 502);
      const error = (answer.body as unknown as ErrorBody).error;
      assert.equal(error.code, "skill_failed");
      assert.match(error.message, /more than 1048576 bytes/);
      const [pid] = JSON.parse(readFileSync(files["printerPid"]!, "utf8")) as number[];
      await waitFor(() => !alive(pid!), 10_000, "the printer to be gone");
      assert.equal(existsSync(files["printerDone"]!), false, "the printer was stopped before it printed everything");
    }));

  test("a failing command is a clean 502 with its stderr; the MCP shape is isError", async () => {
    const answer = await execute("fails", {});
    assert.equal(answer.status, 502);
    assert.match((answer.body as unknown as ErrorBody).error.message, /code 3: boom/);
    const mcp = await post("/v1/skills/mcp/call", '{"name":"fails","arguments":{}}');
    assert.equal(mcp.status, 200);
    assert.equal(mcp.body["isError"], true);
  });

  test("read_file reads inside its roots only: outside, through '..' and through a symlink are refused", async () => {
    const inside = await execute("read_file", { path: path.join(allowed, "notes.txt") });
    assert.equal(inside.status, 200);
    assert.equal((inside.body["result"] as { content: string }).content, "inside the root\n");
    assert.equal(((await execute("read_file", { path: "notes.txt" })).body["result"] as { content: string }).content, "inside the root\n");
    for (const p of [
      "/etc/passwd",
      path.join(work, "secret.txt"),
      "../secret.txt",
      path.join(allowed, "..", "secret.txt"),
      "link-out.txt",
      "parent-dir/secret.txt",
    ]) {
      const refused = await execute("read_file", { path: p });
      assert.equal(refused.status, 403, p);
      const error = (refused.body as unknown as ErrorBody).error;
      assert.equal(error.code, "skill_forbidden", p);
      assert.equal(error.param, "arguments.path");
      assert.doesNotMatch(JSON.stringify(refused.body), /outside the root/);
    }
    assert.equal((await execute("read_file", { path: "missing.txt" })).status, 404);
  });

  test("Agent Skills folders: a command script and an instructions-only skill", async () => {
    assert.deepEqual((await execute("echo_args", { word: "hi" })).body["result"], { echo: { word: "hi" } });
    assert.equal((await execute("echo_args", {})).status, 400);
    assert.deepEqual((await execute("style_guide", {})).body["result"], { name: "style_guide", instructions: "Write short sentences." });
  });

  test("every execution is audited and counted", async () => {
    await execute("add", { left: 2, right: 5 });
    const rows = server.ctx.storage.db.prepare("SELECT * FROM skill_audit ORDER BY id").all() as Array<{
      skill: string;
      caller: string;
      arguments_sha256: string;
      outcome: string;
      error_code: string | null;
      duration_ms: number;
    }>;
    const digest = createHash("sha256").update('{"left":2,"right":5}').digest("hex");
    const adds = rows.filter((r) => r.skill === "add" && r.arguments_sha256 === digest && r.outcome === "ok");
    assert.ok(adds.length >= 3, `runbook execute, runbook mcp/call and this one: ${adds.length}`);
    assert.ok(adds.every((r) => r.caller === "http" && r.duration_ms >= 0));
    assert.ok(rows.some((r) => r.skill === "sleeper" && r.outcome === "timeout" && r.error_code === "skill_timeout"));
    assert.ok(rows.some((r) => r.skill === "printer" && r.outcome === "error" && r.error_code === "skill_failed"));
    assert.ok(rows.some((r) => r.skill === "add" && r.outcome === "invalid" && r.error_code === "invalid_value"));
    assert.ok(rows.some((r) => r.skill === "no_such_skill" && r.outcome === "not_found"));

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const okAdds = Number(/^lmx:skill_executions_total\{skill="add",outcome="ok"\} (\d+)$/m.exec(metrics)?.[1]);
    assert.equal(okAdds, rows.filter((r) => r.skill === "add" && r.outcome === "ok").length);
    assert.match(metrics, /^lmx:skill_executions_total\{skill="sleeper",outcome="timeout"\} 1$/m);
    assert.match(metrics, /^lmx:skill_execution_duration_seconds_count\{skill="add",outcome="ok"\} \d+$/m);
    assert.doesNotMatch(metrics, /no_such_skill/);
  });

  test("lmx skills and lmx skills run", async () => {
    const listed = await run(NODE, [CLI, "skills", "--url", server.url], { env: { ...process.env, NO_COLOR: "1" } });
    assert.match(listed.stdout, /^add\s+builtin\s+yes/m);
    const result = await run(NODE, [CLI, "skills", "run", "add", '{"left":2,"right":5}', "--url", server.url]);
    assert.equal(result.stdout.trim(), "7");
    const whole = JSON.parse((await run(NODE, [CLI, "skills", "run", "add", '{"left":2,"right":5}', "--json", "--url", server.url])).stdout) as {
      result: number;
      ok: boolean;
    };
    assert.deepEqual([whole.ok, whole.result], [true, 7]);
    await assert.rejects(
      run(NODE, [CLI, "skills", "run", "add", '{"left":"2","right":5}', "--url", server.url]),
      (error: { code: number; stderr: string }) => {
        assert.equal(error.code, 1);
        assert.match(error.stderr, /invalid_value .*arguments\.left must be number/);
        return true;
      },
    );
    await assert.rejects(run(NODE, [CLI, "skills", "run", "add", "{not json", "--url", server.url]), (error: { code: number }) => error.code === 2);
  });
});
