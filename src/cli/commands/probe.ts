/** `lmx probe MODEL`: each candidate backend in an isolated runner (POST /admin/models/probe), as a table. */
import type { Command } from "commander";
import type { ProbeAnswer } from "../api-types.js";
import { clientFor, positiveInt, printJson, run, withConnection, type Io } from "../command-kit.js";
import { EXIT } from "../exit.js";
import { renderTable, type Column, type Style } from "../format.js";
import type { ConnectionOptions } from "../target.js";

interface ProbeOptions extends ConnectionOptions {
  timeout?: number;
  allowUnsupported?: boolean;
  json?: boolean;
}

type ProbeRow = ProbeAnswer["results"][number];

export function renderProbe(answer: ProbeAnswer, style: Style): string {
  const color = (row: ProbeRow, text: string) =>
    row.outcome === "success" ? style.green(text) : row.outcome === "failure" ? style.red(text) : style.yellow(text);
  const columns: Array<Column<ProbeRow>> = [
    { header: "BACKEND", value: (r) => r.backend },
    { header: "VERSION", value: (r) => r.backend_version ?? "-" },
    { header: "OUTCOME", value: (r) => r.outcome, color },
    { header: "LOAD", value: (r) => (r.load_ms === null ? "-" : `${(r.load_ms / 1000).toFixed(2)} s`), align: "right" },
    { header: "CANARY", value: (r) => (r.canary_tokens_per_sec === null ? "-" : `${r.canary_tokens_per_sec.toFixed(1)} tok/s`), align: "right" },
    { header: "REASON", value: (r) => (r.reason ? `${r.reason}${r.message ? `: ${r.message}` : ""}` : (r.message ?? "")) },
  ];
  const verdict = answer.recommended_backend
    ? `recommended: ${style.bold(answer.recommended_backend)}`
    : style.red("no backend here can serve this model");
  return `${answer.model_id}\n${renderTable(columns, answer.results, style)}${verdict}\n`;
}

async function probe(model: string, options: ProbeOptions, io: Io): Promise<number> {
  const client = clientFor(options);
  const body = {
    model_id: model,
    ...(options.timeout !== undefined ? { timeout_sec: options.timeout } : {}),
    ...(options.allowUnsupported ? { allow_unsupported_runtime: true } : {}),
  };
  const { body: answer } = await client.post<ProbeAnswer>("/admin/models/probe", "admin", body, { timeoutMs: null });
  if (options.json) printJson(io, answer);
  else io.out(renderProbe(answer, io.style));
  return answer.recommended_backend ? EXIT.ok : EXIT.failed;
}

export function registerProbeCommand(program: Command): void {
  withConnection(
    program
      .command("probe")
      .argument("<model>", "model id or alias")
      .description("try each backend on a model in isolated runners: outcome, load time, canary speed"),
  )
    .option("--timeout <sec>", "per-backend load deadline (default: the server's loader_timeout_sec)", positiveInt)
    .option("--allow-unsupported", "also try backends that failed or are quarantined for this model")
    .option("--json", "print the server's answer as JSON")
    .action((model: string, options: ProbeOptions) => run((io) => probe(model, options, io)));
}
