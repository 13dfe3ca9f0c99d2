/**
 * The one place skills run: sources only produce `Skill`s, and every call — HTTP, MCP, the server-side loop, the
 * CLI — comes through `execute`, which checks existence, permission, size and schema, runs the handler under a
 * deadline that aborts it, validates the output, and records the audit row and metrics. A handler that throws,
 * hangs or returns garbage gives an error result; nothing it does reaches the caller as a crash.
 */
import { EventEmitter } from "node:events";
import { compileValidator, assertValidJsonSchema } from "../chat/json-schema/validate.js";
import { LmxError, isErrorCode, type ErrorCode } from "../errors/codes.js";
import { SKILL_NAME } from "./config.js";
import { sha256, type SkillAuditLog, type SkillOutcome } from "./audit.js";
import type { Skill, SkillDefinition, SkillExecution, SkillSource } from "./types.js";

export interface SkillMetricsSink {
  skillExecutions: { inc(labels: { skill: string; outcome: string }): void };
  skillDuration: { observe(labels: { skill: string; outcome: string }, seconds: number): void };
}

export interface SkillRegistryOptions {
  /** Serialized arguments larger than this are refused with 413 `request_too_large`. */
  maxArgumentBytes: number;
  /** Names the server-side tool loop may run (configuration: `skills.allow_in_loop`). */
  allowInLoop: ReadonlySet<string>;
  audit?: SkillAuditLog | null;
  metrics?: SkillMetricsSink | null;
  log?: (level: "info" | "warn", message: string, fields: Record<string, unknown>) => void;
}

export interface ExecuteOptions {
  /** Who asks, for the audit log: an API key's digest, "mcp", "loop:<request id>", "cli", "http". */
  caller: string;
  /** The caller going away: the handler is aborted and the result is an `aborted` error. */
  signal?: AbortSignal;
  /** Set by the server-side tool loop: skills not in `allow_in_loop` are refused with 403 `skill_forbidden`. */
  inLoop?: boolean;
}

export interface SourceHealth {
  kind: Skill["source"];
  name: string;
  ok: boolean;
  detail?: string;
  skills: number;
}

interface SourceEntry {
  source: SkillSource;
  skills: Skill[];
  /** A failed list(), a skill refused for a bad name or schema, a name taken by an earlier source. */
  problems: string[];
}

/** A handler's exception, as the error of a result. */
function asLmxError(error: unknown, skill: string): LmxError {
  if (error instanceof LmxError) return error;
  return new LmxError("skill_failed", `skill '${skill}' failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}

export class SkillRegistry {
  private readonly sources: SourceEntry[] = [];
  private byName = new Map<string, Skill>();
  private readonly events = new EventEmitter();
  private closed = false;

  constructor(private readonly options: SkillRegistryOptions) {}

  /** Adds a source and lists it now; its changes (`onChange`) re-list it and emit "changed". */
  async addSource(source: SkillSource): Promise<void> {
    const entry: SourceEntry = { source, skills: [], problems: [] };
    this.sources.push(entry);
    source.onChange?.(() => {
      if (!this.closed) void this.relist(entry);
    });
    await this.relist(entry);
  }

  /** Re-lists every source (an operator's reload, a test). */
  async refresh(): Promise<void> {
    await Promise.all(this.sources.map((entry) => this.relist(entry)));
  }

  on(event: "changed", listener: () => void): this {
    this.events.on(event, listener);
    return this;
  }

  off(event: "changed", listener: () => void): this {
    this.events.off(event, listener);
    return this;
  }

  list(): SkillDefinition[] {
    return [...this.byName.values()].map(definitionOf);
  }

  get(name: string): SkillDefinition | undefined {
    const skill = this.byName.get(name);
    return skill ? definitionOf(skill) : undefined;
  }

  health(): SourceHealth[] {
    return this.sources.map(({ source, skills, problems }) => {
      const own = source.health();
      const detail = [own.detail, ...problems].filter((d): d is string => !!d).join("; ");
      return { kind: source.kind, name: source.name, ok: own.ok && problems.length === 0, skills: skills.length, ...(detail ? { detail } : {}) };
    });
  }

  /**
   * Runs a skill. Throws `LmxError` for a call that is refused before the handler runs: 404 `skill_not_found`,
   * 403 `skill_forbidden`, 413 `request_too_large`, 400 `invalid_value` naming the field (`arguments.left`).
   * Resolves with `ok: false` for a handler that failed (`skill_failed`, `skill_timeout`, a source's own code such
   * as `mcp_server_unavailable`, or a handler's LmxError such as divide-by-zero's `invalid_value`). Every call,
   * refused or not, is audited.
   */
  async execute(name: string, args: unknown, options: ExecuteOptions): Promise<SkillExecution> {
    const started = performance.now();
    let text: string;
    try {
      text = JSON.stringify(args ?? {}) ?? "null";
    } catch {
      text = "unserializable";
    }
    const skill = this.byName.get(name);
    const refuse = (outcome: SkillOutcome, error: LmxError): never => {
      this.record(name, options.caller, text, started, outcome, error.code, skill !== undefined);
      throw error;
    };
    if (!skill) return refuse("not_found", new LmxError("skill_not_found", `no skill named '${name.slice(0, 200)}'; GET /v1/skills lists them`));
    if (options.inLoop && !this.options.allowInLoop.has(name))
      return refuse("forbidden", new LmxError("skill_forbidden", `skill '${name}' may not run in the server-side tool loop (skills.allow_in_loop)`));
    if (Buffer.byteLength(text) > this.options.maxArgumentBytes)
      return refuse(
        "invalid",
        new LmxError(
          "request_too_large",
          `the arguments of '${name}' are over skills.max_argument_bytes (${this.options.maxArgumentBytes} bytes serialized)`,
          {
            param: "arguments",
          },
        ),
      );
    if (typeof args !== "object" || args === null || Array.isArray(args))
      return refuse("invalid", new LmxError("invalid_value", "arguments must be a JSON object", { param: "arguments" }));
    const problem = validationProblem(skill.parameters, args);
    if (problem) return refuse("invalid", new LmxError("invalid_value", `arguments of '${name}': ${problem.message}`, { param: problem.param }));

    const controller = new AbortController();
    const outer = options.signal;
    const onOuterAbort = () => controller.abort(new LmxError("skill_failed", `the caller of '${name}' went away`));
    if (outer?.aborted) onOuterAbort();
    else outer?.addEventListener("abort", onOuterAbort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new LmxError("skill_timeout", `skill '${name}' did not finish within ${skill.timeoutMs} ms; it was stopped`);
        controller.abort(error);
        reject(error);
      }, skill.timeoutMs);
      controller.signal.addEventListener("abort", () => reject(controller.signal.reason as unknown), { once: true });
    });
    // a rejection that loses the race must not become an unhandled rejection
    deadline.catch(() => undefined);
    let outcome: SkillOutcome = "ok";
    let error: LmxError | null = null;
    let value: unknown;
    try {
      const running = Promise.resolve().then(() => skill.run(args as Record<string, unknown>, { signal: controller.signal, caller: options.caller }));
      running.catch(() => undefined);
      value = await Promise.race([running, deadline]);
      value = checkedResult(skill, value);
    } catch (thrown) {
      error = asLmxError(thrown, name);
      outcome = error.code === "skill_timeout" ? "timeout" : outer?.aborted ? "aborted" : "error";
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onOuterAbort);
      // handlers free what they hold (a process group, a socket) on abort, whatever the outcome
      if (!controller.signal.aborted) controller.abort(new LmxError("skill_failed", "the call ended"));
    }
    const durationMs = this.record(name, options.caller, text, started, outcome, error?.code ?? null, true);
    if (error) {
      if (outcome === "error" && error.code === "skill_failed") this.options.log?.("warn", "skill failed", { skill: name, err: error.message });
      return { name, ok: false, error: { code: error.code, message: error.message, ...(error.param ? { param: error.param } : {}) }, durationMs };
    }
    return { name, ok: true, value, durationMs };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.sources.map((entry) => entry.source.close?.().catch(() => undefined)));
  }

  private record(skill: string, caller: string, args: string, started: number, outcome: SkillOutcome, code: string | null, known: boolean): number {
    const durationMs = performance.now() - started;
    this.options.audit?.record({
      skill: skill.slice(0, 200),
      caller,
      arguments_sha256: sha256(args),
      duration_ms: Math.round(durationMs * 1000) / 1000,
      outcome,
      error_code: code,
    });
    // names of skills that do not exist are the caller's text: not a label (unbounded series)
    if (known) {
      this.options.metrics?.skillExecutions.inc({ skill, outcome });
      this.options.metrics?.skillDuration.observe({ skill, outcome }, durationMs / 1000);
    }
    return Math.round(durationMs * 1000) / 1000;
  }

  private async relist(entry: SourceEntry): Promise<void> {
    const problems: string[] = [];
    let skills: Skill[] = [];
    try {
      skills = await entry.source.list();
    } catch (error) {
      problems.push(`listing failed: ${(error as Error)?.message ?? String(error)}`);
    }
    entry.skills = skills.filter((skill) => {
      const problem = definitionProblem(skill);
      if (problem) problems.push(`skill '${skill.name}' skipped: ${problem}`);
      return !problem;
    });
    entry.problems = problems;
    this.rebuild();
    for (const problem of problems) this.options.log?.("warn", "skill source problem", { source: entry.source.name, problem });
    this.events.emit("changed");
  }

  /** Names in source order: the first source to claim a name keeps it; later claims are reported. */
  private rebuild(): void {
    const byName = new Map<string, Skill>();
    for (const entry of this.sources) {
      entry.problems = entry.problems.filter((p) => !p.includes("is already provided by"));
      for (const skill of entry.skills) {
        const taken = byName.get(skill.name);
        if (taken) {
          entry.problems.push(`skill '${skill.name}' is already provided by ${taken.source} '${taken.sourceName}'`);
          continue;
        }
        byName.set(skill.name, { ...skill, allowInLoop: this.options.allowInLoop.has(skill.name), run: skill.run.bind(skill) });
      }
    }
    this.byName = byName;
  }
}

function definitionOf(skill: Skill): SkillDefinition {
  const { run: _run, ...definition } = skill;
  return definition;
}

function definitionProblem(skill: Skill): string | null {
  if (!SKILL_NAME.test(skill.name)) return "its name must match [a-zA-Z0-9_.-]{1,128}";
  if (!(skill.timeoutMs > 0)) return "its timeout must be positive";
  try {
    assertValidJsonSchema(skill.parameters, "parameters");
    if (skill.outputSchema !== undefined) assertValidJsonSchema(skill.outputSchema, "output_schema");
  } catch (error) {
    return (error as Error).message;
  }
  return null;
}

/** The first schema violation with the field it is about (`arguments.left`, `arguments.items.2`). */
function validationProblem(schema: unknown, args: unknown): { param: string; message: string } | null {
  const problem = compileValidator(schema)(args);
  if (problem === null) return null;
  // ajv's text reads "value/left must be number" or "value must have required property 'left'"
  const pointer = /^value((?:\/[^ ]*)?)/.exec(problem)?.[1] ?? "";
  const required = /required property '([^']+)'/.exec(problem)?.[1];
  const additional = /additional properties/.test(problem) ? additionalProperty(schema, args, pointer) : undefined;
  const segments = pointer.split("/").filter(Boolean).map(unescapePointer);
  if (required) segments.push(required);
  else if (additional) segments.push(additional);
  const param = ["arguments", ...segments].join(".");
  const why = required ? "is required" : additional ? "is not an argument this skill takes" : problem.replace(/^value\S*\s*/, "");
  return { param, message: `${param} ${why}` };
}

/** The first property at `pointer` that the schema there does not list (ajv's message omits it). */
function additionalProperty(schema: unknown, args: unknown, pointer: string): string | undefined {
  let value: unknown = args;
  let node: unknown = schema;
  for (const segment of pointer.split("/").filter(Boolean).map(unescapePointer)) {
    value = (value as Record<string, unknown> | undefined)?.[segment];
    node = ((node as { properties?: Record<string, unknown> } | undefined)?.properties ?? {})[segment];
  }
  const known = Object.keys((node as { properties?: Record<string, unknown> } | undefined)?.properties ?? {});
  if (typeof value !== "object" || value === null) return undefined;
  return Object.keys(value).find((key) => !known.includes(key));
}

function unescapePointer(segment: string): string {
  return segment.replace(/~1/g, "/").replace(/~0/g, "~");
}

/** A result must be JSON (what every caller serializes) and match the output schema when one is declared. */
function checkedResult(skill: Skill, value: unknown): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new LmxError("skill_failed", `skill '${skill.name}' returned a value that is not JSON: ${(error as Error).message}`);
  }
  const json: unknown = text === undefined ? null : JSON.parse(text);
  if (skill.outputSchema !== undefined) {
    const problem = compileValidator(skill.outputSchema)(json);
    if (problem) throw new LmxError("skill_failed", `skill '${skill.name}' returned a value that does not match its output schema: ${problem}`);
  }
  return json;
}

/** A failed execution as the error HTTP callers answer with (504 skill_timeout, 502 skill_failed, ...). */
export function executionError(execution: SkillExecution): LmxError {
  const error = execution.error ?? { code: "skill_failed", message: `skill '${execution.name}' failed` };
  const code: ErrorCode = isErrorCode(error.code) ? error.code : "skill_failed";
  return new LmxError(code, error.message, error.param ? { param: error.param } : {});
}
