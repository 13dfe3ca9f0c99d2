/** `lmx skills` (the server's skills, GET /v1/skills) and `lmx skills run NAME '{json}'` (POST /v1/skills/{name}/execute). */
import type { Command } from "commander";
import { clientFor, printJson, run, withConnection, type Io } from "../command-kit.js";
import { EXIT, usageError } from "../exit.js";
import { renderTable, type Column } from "../format.js";
import type { ConnectionOptions } from "../target.js";

interface SkillsOptions extends ConnectionOptions {
  json?: boolean;
}

interface SkillRow {
  name: string;
  description: string;
  source: string;
  timeout_ms: number;
  allow_in_loop: boolean;
}

interface SkillList {
  data: SkillRow[];
  sources?: Array<{ kind: string; name: string; ok: boolean; skills: number; detail: string | null }>;
}

interface ExecuteAnswer {
  name: string;
  ok: boolean;
  result: unknown;
  duration_ms: number;
}

const DESCRIPTION_WIDTH = 70;

export async function listSkills(options: SkillsOptions, io: Io): Promise<number> {
  const { body } = await clientFor(options).get<SkillList>("/v1/skills", "v1");
  if (options.json) {
    printJson(io, body);
    return EXIT.ok;
  }
  if (body.data.length === 0) {
    io.out("no skills: the server has skills.enabled: false, or every source is empty (docs/skills.md)\n");
    return EXIT.ok;
  }
  const columns: Array<Column<SkillRow>> = [
    { header: "NAME", value: (s) => s.name },
    { header: "SOURCE", value: (s) => s.source },
    { header: "LOOP", value: (s) => (s.allow_in_loop ? "yes" : "no") },
    { header: "TIMEOUT", value: (s) => `${s.timeout_ms / 1000}s`, align: "right" },
    {
      header: "DESCRIPTION",
      value: (s) => (s.description.length > DESCRIPTION_WIDTH ? `${s.description.slice(0, DESCRIPTION_WIDTH - 1)}…` : s.description),
    },
  ];
  io.out(renderTable(columns, body.data, io.style));
  for (const source of body.sources ?? []) {
    if (!source.ok) io.out(`${io.style.yellow(`${source.kind} ${source.name}`)}: ${source.detail ?? "unhealthy"}\n`);
  }
  return EXIT.ok;
}

export function parseSkillArguments(text: string | undefined): unknown {
  if (text === undefined) return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw usageError(
      `the arguments are not JSON: ${(error as Error).message}`,
      `quote them for the shell: lmx skills run add '{"left":2,"right":5}'`,
    );
  }
}

export async function runSkill(name: string, argumentsText: string | undefined, options: SkillsOptions, io: Io): Promise<number> {
  const args = parseSkillArguments(argumentsText);
  // the server enforces each skill's own timeout; the CLI only must not give up first
  const { body } = await clientFor(options).post<ExecuteAnswer>(
    `/v1/skills/${encodeURIComponent(name)}/execute`,
    "v1",
    { arguments: args },
    { timeoutMs: null },
  );
  printJson(io, options.json ? body : body.result);
  return EXIT.ok;
}

export function registerSkillsCommand(program: Command): void {
  const skills = withConnection(
    program.command("skills").description("the server's skills (tools it runs itself); `lmx skills run NAME '{json}'` runs one"),
  )
    .option("--json", "print the list as JSON (with each source's health)")
    .action((options: SkillsOptions) => run((io) => listSkills(options, io)));
  withConnection(skills.command("run <name> [arguments]").description("runs a skill with a JSON arguments object; prints its result as JSON"))
    .option("--json", "print the whole answer (name, ok, result, duration_ms)")
    // the connection flags may stand after `run` or before it (`lmx skills --url X run ...`): the parent's count too
    .action((name: string, argumentsText: string | undefined, _options: SkillsOptions, command: Command) =>
      run((io) => runSkill(name, argumentsText, command.optsWithGlobals<SkillsOptions>(), io)),
    );
}
