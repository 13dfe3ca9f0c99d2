/** The skill registry on its own: validation with the field named, size cap, deadline and abort, failures as results, names, changes, loop permission, audit. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LmxError } from "../../src/errors/codes.js";
import { SkillAuditLog } from "../../src/skills/audit.js";
import { SkillRegistry, executionError } from "../../src/skills/registry.js";
import type { Skill, SkillSource } from "../../src/skills/types.js";
import { openStateDatabase } from "../../src/state/database.js";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";

function skill(name: string, run: Skill["run"], extra: Partial<Skill> = {}): Skill {
  return {
    name,
    description: name,
    parameters: {
      type: "object",
      properties: { n: { type: "integer" }, nested: { type: "object", properties: { deep: { type: "string" } } } },
      additionalProperties: false,
    },
    timeoutMs: 200,
    source: "builtin",
    sourceName: "test",
    allowInLoop: false,
    run,
    ...extra,
  };
}

class ListSource implements SkillSource {
  readonly kind = "builtin" as const;
  private listener: (() => void) | null = null;
  constructor(
    readonly name: string,
    public skills: Skill[],
  ) {}
  async list(): Promise<Skill[]> {
    return this.skills;
  }
  onChange(listener: () => void): void {
    this.listener = listener;
  }
  changed(): void {
    this.listener?.();
  }
  health() {
    return { ok: true };
  }
}

function registry(extra: Partial<ConstructorParameters<typeof SkillRegistry>[0]> = {}) {
  return new SkillRegistry({ maxArgumentBytes: 1024, allowInLoop: new Set(["echo"]), ...extra });
}

const refused = async (promise: Promise<unknown>, code: string, param?: string) =>
  assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof LmxError);
    assert.equal(error.code, code);
    if (param !== undefined) assert.equal(error.param, param);
    return true;
  });

describe("SkillRegistry", () => {
  test("runs a skill with validated arguments; refusals are thrown with the field named", async () => {
    const r = registry();
    await r.addSource(new ListSource("s", [skill("echo", async (args) => args)]));
    const ok = await r.execute("echo", { n: 1 }, { caller: "test" });
    assert.deepEqual([ok.ok, ok.value], [true, { n: 1 }]);
    await refused(r.execute("nope", {}, { caller: "test" }), "skill_not_found");
    await refused(r.execute("echo", { n: "x" }, { caller: "test" }), "invalid_value", "arguments.n");
    await refused(r.execute("echo", { nested: { deep: 3 } }, { caller: "test" }), "invalid_value", "arguments.nested.deep");
    await refused(r.execute("echo", { other: 1 }, { caller: "test" }), "invalid_value", "arguments.other");
    await refused(r.execute("echo", [1], { caller: "test" }), "invalid_value", "arguments");
    await refused(r.execute("echo", { n: 1, pad: "x".repeat(2000) }, { caller: "test" }), "request_too_large", "arguments");
  });

  test("a handler that throws, returns non-JSON or breaks its output schema is an error result, not a crash", async () => {
    const r = registry();
    await r.addSource(
      new ListSource("s", [
        skill("throws", async () => {
          throw new Error("kaput");
        }),
        skill("cyclic", async () => {
          const o: Record<string, unknown> = {};
          o["self"] = o;
          return o;
        }),
        skill("typed", async () => "text", { outputSchema: { type: "number" } }),
        skill("own_code", async () => {
          throw new LmxError("invalid_value", "bad", { param: "arguments.n" });
        }),
      ]),
    );
    for (const name of ["throws", "cyclic", "typed"]) {
      const result = await r.execute(name, {}, { caller: "test" });
      assert.equal(result.ok, false, name);
      assert.equal(result.error?.code, "skill_failed", name);
      assert.equal(executionError(result).status, 502);
    }
    const own = await r.execute("own_code", {}, { caller: "test" });
    assert.deepEqual(own.error, { code: "invalid_value", message: "bad", param: "arguments.n" });
  });

  test("a handler past its timeout is aborted and answered skill_timeout; a caller that leaves aborts it too", async () => {
    const r = registry();
    let sawAbort = false;
    const hang: Skill["run"] = (_args, context) =>
      new Promise(() => {
        context.signal.addEventListener("abort", () => {
          sawAbort = true;
        });
      });
    await r.addSource(new ListSource("s", [skill("hang", hang, { timeoutMs: 50 })]));
    const result = await r.execute("hang", {}, { caller: "test" });
    assert.equal(result.error?.code, "skill_timeout");
    assert.equal(executionError(result).status, 504);
    assert.equal(sawAbort, true);

    const r2 = registry();
    await r2.addSource(new ListSource("s", [skill("hang", hang, { timeoutMs: 60_000 })]));
    const controller = new AbortController();
    const pending = r2.execute("hang", {}, { caller: "test", signal: controller.signal });
    controller.abort();
    const gone = await pending;
    assert.equal(gone.ok, false);
    assert.equal(gone.error?.code, "skill_failed");
  });

  test("the first source keeps a name; bad definitions are skipped and reported; changes re-list", async () => {
    const r = registry();
    const first = new ListSource("first", [skill("same", async () => 1)]);
    const second = new ListSource("second", [
      skill("same", async () => 2),
      skill("bad name!", async () => 3),
      skill("bad_schema", async () => 4, { parameters: { type: 12 } }),
    ]);
    await r.addSource(first);
    await r.addSource(second);
    assert.deepEqual(
      r.list().map((s) => s.name),
      ["same"],
    );
    assert.equal((await r.execute("same", {}, { caller: "t" })).value, 1);
    const health = r.health();
    assert.equal(health[0]?.ok, true);
    assert.equal(health[1]?.ok, false);
    assert.match(health[1]?.detail ?? "", /already provided/);
    assert.match(health[1]?.detail ?? "", /bad name!/);
    assert.match(health[1]?.detail ?? "", /bad_schema/);

    let changes = 0;
    r.on("changed", () => changes++);
    second.skills = [skill("later", async () => 5)];
    second.changed();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(changes, 1);
    assert.deepEqual(
      r
        .list()
        .map((s) => s.name)
        .sort(),
      ["later", "same"],
    );
    assert.equal(r.health()[1]?.ok, true);
  });

  test("the loop may run only allow_in_loop skills, and allowInLoop says so", async () => {
    const r = registry();
    await r.addSource(new ListSource("s", [skill("echo", async () => 1), skill("other", async () => 2)]));
    assert.equal(r.get("echo")?.allowInLoop, true);
    assert.equal(r.get("other")?.allowInLoop, false);
    assert.equal((await r.execute("echo", {}, { caller: "loop:1", inLoop: true })).value, 1);
    await refused(r.execute("other", {}, { caller: "loop:1", inLoop: true }), "skill_forbidden");
    assert.equal((await r.execute("other", {}, { caller: "http" })).value, 2);
  });

  test("every call, refused or not, is an audit row with a digest of the arguments, never the arguments", async () => {
    const state = openStateDatabase(mkdtempSync(path.join(os.tmpdir(), "lmx-skills-audit-")), () => {});
    const audit = new SkillAuditLog(state, 1000);
    const r = registry({ audit });
    await r.addSource(new ListSource("s", [skill("echo", async (args) => args)]));
    await r.execute("echo", { nested: { deep: "SECRET-VALUE" } }, { caller: "key:abc" });
    await r.execute("echo", { n: "x" }, { caller: "key:abc" }).catch(() => undefined);
    await r.execute("missing", {}, { caller: "cli" }).catch(() => undefined);
    const rows = audit.recent().reverse();
    assert.deepEqual(
      rows.map((row) => [row.skill, row.caller, row.outcome, row.error_code]),
      [
        ["echo", "key:abc", "ok", null],
        ["echo", "key:abc", "invalid", "invalid_value"],
        ["missing", "cli", "not_found", "skill_not_found"],
      ],
    );
    assert.match(rows[0]!.arguments_sha256, /^[0-9a-f]{64}$/);
    assert.doesNotMatch(JSON.stringify(rows), /SECRET-VALUE/);
    state.db.close();
  });
});
