/**
 * `lmx agents`: start an agent run (`run`), list runs (`ls`), show one (`show ID [--follow]`), cancel one
 * (`cancel ID`). Following reads GET /v1/agents/runs/{id}/events: steps as they start and finish, the run's
 * terminal state last (docs/agents.md).
 */
import type { Command } from "commander";
import { clientFor, positiveInt, printJson, run, withConnection, type Io } from "../command-kit.js";
import { CliError, EXIT, usageError } from "../exit.js";
import { renderPairs, renderTable, type Column } from "../format.js";
import { httpError, type LmxClient } from "../http.js";
import { sseData } from "../sse.js";
import type { ConnectionOptions } from "../target.js";

interface AgentOptions extends ConnectionOptions {
  json?: boolean;
}

interface RunOptions extends AgentOptions {
  strategy: string;
  roles: string;
  model?: string;
  parallelism?: number;
  timeout?: number;
  maxTokens?: number;
  follow?: boolean;
}

interface ListOptions extends AgentOptions {
  limit?: number;
  status?: string;
  since?: string;
}

interface ShowOptions extends AgentOptions {
  follow?: boolean;
}

interface StepWire {
  index: number;
  kind: string;
  role: string;
  status: string;
  output: string | null;
  duration_ms: number | null;
  usage: { completion_tokens: number };
  error: { message: string } | null;
}

export interface RunWire {
  id: string;
  status: string;
  strategy: string;
  roles: string[];
  resolved_model: string | null;
  priority: string;
  created_at: number;
  finished_at: number | null;
  reason: string | null;
  output: string | null;
  decision: Record<string, unknown> | null;
  usage: { total_tokens: number };
  steps?: StepWire[];
}

const TERMINAL = new Set(["completed", "failed", "cancelled", "timed_out"]);

export async function startRun(prompt: string, options: RunOptions, io: Io): Promise<number> {
  const roles = options.roles
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean);
  if (roles.length === 0) throw usageError("--roles names at least one role", "lmx agents run 'Summarize release risks' --roles researcher,reviewer");
  const client = clientFor(options);
  const request = {
    strategy: options.strategy,
    prompt,
    roles,
    ...(options.model ? { model: options.model } : {}),
    ...(options.parallelism !== undefined ? { max_parallelism: options.parallelism } : {}),
    ...(options.timeout !== undefined ? { timeout_sec: options.timeout } : {}),
    ...(options.maxTokens !== undefined ? { max_tokens: options.maxTokens } : {}),
  };
  const res = await client.raw("POST", "/v1/agents/runs", "v1", { body: { request, metadata: { source: "lmx agents run" } } });
  const text = await res.text();
  if (!res.ok) throw httpError(res.status, text, "v1", client.target, "/v1/agents/runs");
  const created = JSON.parse(text) as RunWire;
  if (!options.follow) {
    if (options.json) printJson(io, created);
    else io.out(`${created.id} ${created.status} (lmx agents show ${created.id} --follow)\n`);
    return EXIT.ok;
  }
  io.err(`${io.errStyle.dim(`run ${created.id} on ${created.resolved_model ?? "?"}`)}\n`);
  return follow(client, created.id, options, io);
}

export async function listRuns(options: ListOptions, io: Io): Promise<number> {
  const query = new URLSearchParams();
  if (options.limit !== undefined) query.set("limit", String(options.limit));
  if (options.status) query.set("status", options.status);
  if (options.since) query.set("since", options.since);
  const { body } = await clientFor(options).get<{ data: RunWire[] }>(`/v1/agents/runs${query.size > 0 ? `?${query}` : ""}`, "v1");
  if (options.json) {
    printJson(io, body);
    return EXIT.ok;
  }
  if (body.data.length === 0) {
    io.out("no agent runs\n");
    return EXIT.ok;
  }
  const columns: Array<Column<RunWire>> = [
    { header: "ID", value: (r) => r.id },
    { header: "STATUS", value: (r) => r.status },
    { header: "STRATEGY", value: (r) => r.strategy },
    { header: "ROLES", value: (r) => r.roles.join(",") },
    { header: "MODEL", value: (r) => r.resolved_model ?? "" },
    { header: "TOKENS", value: (r) => String(r.usage.total_tokens), align: "right" },
    { header: "CREATED", value: (r) => new Date(r.created_at * 1000).toISOString().replace(/\.\d+Z$/, "Z") },
  ];
  io.out(renderTable(columns, body.data, io.style));
  return EXIT.ok;
}

export async function showRun(id: string, options: ShowOptions, io: Io): Promise<number> {
  const client = clientFor(options);
  if (options.follow) return follow(client, id, options, io);
  const { body } = await client.get<RunWire>(`/v1/agents/runs/${encodeURIComponent(id)}`, "v1");
  if (options.json) printJson(io, body);
  else printRun(body, io);
  return exitOf(body.status);
}

export async function cancelRun(id: string, options: AgentOptions, io: Io): Promise<number> {
  const { body } = await clientFor(options).post<RunWire>(`/v1/agents/runs/${encodeURIComponent(id)}/cancel`, "v1", {});
  if (options.json) printJson(io, body);
  else io.out(`${body.id} ${body.status}\n`);
  return EXIT.ok;
}

function printRun(run: RunWire, io: Io): void {
  const pairs: Array<[string, string]> = [
    ["id", run.id],
    ["status", run.reason && run.status !== "completed" ? `${run.status} (${run.reason})` : run.status],
    ["strategy", run.strategy],
    ["roles", run.roles.join(", ")],
    ["model", run.resolved_model ?? ""],
    ["priority", run.priority],
    ["tokens", String(run.usage.total_tokens)],
  ];
  if (run.decision) pairs.push(["decision", JSON.stringify(run.decision)]);
  io.out(renderPairs(pairs, io.style));
  for (const step of run.steps ?? []) {
    const took = step.duration_ms === null ? "" : ` ${(step.duration_ms / 1000).toFixed(1)}s`;
    io.out(`\n${io.style.bold(`step ${step.index} ${step.kind} · ${step.role}`)} ${step.status}${took}\n`);
    if (step.output) io.out(`${step.output}\n`);
    if (step.error) io.out(`${io.style.red(step.error.message)}\n`);
  }
  if (run.output !== null) io.out(`\n${io.style.bold("output")}\n${run.output}\n`);
}

/** Prints the run's events until its terminal one; the exit code says how it ended. */
async function follow(client: LmxClient, id: string, options: AgentOptions, io: Io): Promise<number> {
  const path = `/v1/agents/runs/${encodeURIComponent(id)}/events`;
  const res = await client.raw("GET", path, "v1", { timeoutMs: null });
  if (!res.ok) throw httpError(res.status, await res.text().catch(() => ""), "v1", client.target, path);
  if (!res.body) throw new CliError(`${path} answered without a body`, EXIT.failed);
  let status = "running";
  for await (const data of sseData(res.body)) {
    const event = JSON.parse(data) as Record<string, unknown> & { type: string };
    if (options.json) {
      io.out(`${data}\n`);
    } else if (event.type === "step.started") {
      io.out(`\n${io.style.bold(`step ${String(event["step"])} · ${String(event["role"])}`)}\n`);
    } else if (event.type === "step.delta") {
      io.out(String(event["text"] ?? ""));
    } else if (event.type === "step.tool_call") {
      io.out(io.style.dim(`\n→ ${String(event["name"])}(${String(event["arguments"])})\n`));
    } else if (event.type === "step.finished" && event["status"] !== "completed") {
      io.out(io.style.yellow(`\n(step ${String(event["status"])})\n`));
    }
    if (event.type.startsWith("run.") && TERMINAL.has(String(event["status"]))) {
      status = String(event["status"]);
      if (!options.json) {
        if (typeof event["output"] === "string") io.out(`\n\n${io.style.bold("output")}\n${event["output"]}\n`);
        const reason = event["reason"] ? ` (${String(event["reason"])})` : "";
        io.err(`${io.errStyle.dim(`run ${id} ${status}${reason}`)}\n`);
      }
    }
  }
  return exitOf(status);
}

function exitOf(status: string): number {
  return status === "completed" || !TERMINAL.has(status) ? EXIT.ok : EXIT.failed;
}

export function registerAgentsCommand(program: Command): void {
  const agents = program.command("agents").description("multi-step agent runs on the server's models (docs/agents.md)");
  withConnection(agents.command("run <prompt>").description("starts an agent run; --follow prints its steps as they run"))
    .option("-s, --strategy <name>", "parallel_map, handoff, router or vote", "parallel_map")
    .requiredOption("-r, --roles <list>", "comma-separated roles (researcher,reviewer,planner,coder,summarizer, or the config's)")
    .option("-m, --model <id>", "a model id, or auto (the default)")
    .option("-p, --parallelism <n>", "max_parallelism (1-32)", positiveInt)
    .option("--timeout <seconds>", "timeout_sec", positiveInt)
    .option("--max-tokens <n>", "max_tokens of every step", positiveInt)
    .option("-f, --follow", "print the run's events until it ends")
    .option("--json", "print JSON (the run object, or with --follow one event per line)")
    .action((prompt: string, _options: RunOptions, command: Command) => run((io) => startRun(prompt, command.optsWithGlobals<RunOptions>(), io)));
  withConnection(agents.command("ls").description("lists agent runs, newest first"))
    .option("-n, --limit <n>", "how many (default 20)", positiveInt)
    .option("--status <status>", "queued, running, completed, failed, cancelled or timed_out")
    .option("--since <time>", "runs created since (ISO 8601, or seconds since the epoch)")
    .option("--json", "print the list as JSON")
    .action((_options: ListOptions, command: Command) => run((io) => listRuns(command.optsWithGlobals<ListOptions>(), io)));
  withConnection(agents.command("show <id>").description("shows a run with its steps; --follow prints its events until it ends"))
    .option("-f, --follow", "replay the run's events, then follow them live until it ends")
    .option("--json", "print JSON")
    .action((id: string, _options: ShowOptions, command: Command) => run((io) => showRun(id, command.optsWithGlobals<ShowOptions>(), io)));
  withConnection(agents.command("cancel <id>").description("cancels a queued or running run"))
    .option("--json", "print the run object")
    .action((id: string, _options: AgentOptions, command: Command) => run((io) => cancelRun(id, command.optsWithGlobals<AgentOptions>(), io)));
}
