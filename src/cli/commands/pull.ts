/**
 * `lmx pull org/repo[:QUANT]`: asks the server to download (POST /admin/models/download) and watches the job.
 *
 * The server owns the download, so Ctrl-C only stops watching: the job keeps going, `lmx pull` with the same
 * spec joins it again, and `lmx pull --cancel` stops it. A stopped or failed download leaves its partial file,
 * and the next pull resumes it with a Range request.
 */
import type { Command } from "commander";
import type { AvailableList, DownloadSnapshot } from "../api-types.js";
import { clientFor, nonNegativeNumber, printJson, run, withConnection, type Io } from "../command-kit.js";
import { CliError, EXIT, usageError } from "../exit.js";
import { formatBytes, formatDuration } from "../format.js";
import type { LmxClient } from "../http.js";
import { progressBar, progressLine } from "../progress.js";
import type { ConnectionOptions } from "../target.js";

interface PullOptions extends ConnectionOptions {
  revision?: string;
  cancel?: boolean;
  detach?: boolean;
  progressEvery: number;
  json?: boolean;
}

const POLL_MS = 250;
const FINISHED = new Set(["completed", "failed", "cancelled"]);

function repoOf(spec: string): string {
  return spec.split(":", 1)[0]!;
}

function validateSpec(spec: string): void {
  const repo = repoOf(spec);
  if (!/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(repo))
    throw usageError(
      `'${spec}' is not a hub repo`,
      "write it as org/name, or org/name:QUANT for one quantization (e.g. bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M)",
    );
}

async function cancel(client: LmxClient, spec: string, options: PullOptions, io: Io): Promise<number> {
  const repo = repoOf(spec);
  const { body } = await client.get<{ data: DownloadSnapshot[] }>("/admin/models/downloads", "admin");
  const running = body.data.filter((d) => d.repo === repo && (d.status === "queued" || d.status === "running"));
  const cancelled: DownloadSnapshot[] = [];
  for (const job of running)
    cancelled.push(
      (await client.json<DownloadSnapshot>("DELETE", `/admin/models/downloads/${encodeURIComponent(job.id)}`, "admin", { timeoutMs: 60_000 })).body,
    );
  if (options.json) printJson(io, { object: "list", data: cancelled });
  else if (cancelled.length === 0) io.out(`no download of ${repo} is running\n`);
  else
    for (const job of cancelled)
      io.out(
        `cancelled ${job.repo} at ${formatBytes(job.bytes_done)} of ${formatBytes(job.bytes_total)}; the partial file stays: \`lmx pull ${spec}\` resumes it\n`,
      );
  return EXIT.ok;
}

/** Ids the server gives the downloaded files, so the summary can say what to load. */
async function modelIdsIn(client: LmxClient, localPath: string | null | undefined): Promise<string[]> {
  if (!localPath) return [];
  try {
    const { body } = await client.get<AvailableList>("/admin/models/available", "admin");
    return body.data.filter((m) => m.local_path === localPath || (m.path ?? "").startsWith(`${localPath}/`)).map((m) => m.id);
  } catch {
    return []; // the summary is a courtesy: the download itself succeeded
  }
}

async function pull(spec: string, options: PullOptions, io: Io): Promise<number> {
  validateSpec(spec);
  const client = clientFor(options);
  if (options.cancel) return cancel(client, spec, options, io);

  const started = await client.post<DownloadSnapshot>(
    "/admin/models/download",
    "admin",
    { repo: spec, ...(options.revision ? { revision: options.revision } : {}) },
    { timeoutMs: 120_000 },
  );
  let job = started.body;
  if (options.detach) {
    if (options.json) printJson(io, job);
    else io.out(`downloading ${job.repo} on the server (job ${job.id}); \`lmx pull ${spec}\` shows its progress\n`);
    return EXIT.ok;
  }

  const bar = io.stderrTTY;
  const startedAt = Date.now();
  let lastLine = 0;
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
  };
  process.on("SIGINT", onSigint);
  if (!bar) io.err(`${job.repo}: ${job.files?.length ?? 0} file(s), ${formatBytes(job.bytes_total)} (job ${job.id})\n`);
  try {
    while (!FINISHED.has(job.status) && !interrupted) {
      if (bar) io.err(`\r\x1b[2K${job.repo} ${progressBar(job)}`);
      else if (options.progressEvery === 0 || Date.now() - lastLine >= options.progressEvery * 1000) {
        io.err(`${progressLine(job)}\n`);
        lastLine = Date.now();
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
      if (interrupted) break;
      job = (await client.get<DownloadSnapshot>(`/admin/models/downloads/${encodeURIComponent(job.id)}`, "admin")).body;
    }
  } finally {
    process.off("SIGINT", onSigint);
  }
  if (bar) io.err(`\r\x1b[2K${job.repo} ${progressBar(job)}\n`);
  else if (!interrupted) io.err(`${progressLine(job)}\n`);

  if (interrupted) {
    io.err(`\nstopped watching at ${formatBytes(job.bytes_done)} of ${formatBytes(job.bytes_total)}. The download continues on the server:\n`);
    io.err(
      `  \`lmx pull ${spec}\` watches it again; \`lmx pull --cancel ${spec}\` stops it (the partial file stays, and the next pull resumes it)\n`,
    );
    return EXIT.interrupted;
  }
  if (options.json) printJson(io, job);
  if (job.status !== "completed") {
    const error = job.error ?? { code: job.status, message: `the download ended ${job.status}` };
    throw new CliError(
      `${error.code}: ${error.message}`,
      EXIT.failed,
      job.status === "cancelled"
        ? `\`lmx pull ${spec}\` resumes it`
        : `run \`lmx pull ${spec}\` again: the bytes already on disk are kept and resumed`,
      error.code,
    );
  }
  if (!options.json) {
    const ids = await modelIdsIn(client, job.local_path);
    io.out(
      `${io.style.green("done")} ${job.repo}: ${job.files?.length ?? 0} file(s), ${formatBytes(job.bytes_total)} in ${formatDuration((Date.now() - startedAt) / 1000)}\n`,
    );
    if (job.local_path) io.out(`  in ${job.local_path}\n`);
    if (ids.length > 0) io.out(`  model id${ids.length > 1 ? "s" : ""}: ${ids.join(", ")} — \`lmx load ${ids[0]}\`\n`);
  }
  return EXIT.ok;
}

export function registerPullCommand(program: Command): void {
  withConnection(
    program
      .command("pull")
      .argument("<repo>", "Hugging Face repo, org/name, or org/name:QUANT for the GGUF files of one quantization")
      .description("download a model into the server's HF cache, with progress; re-running resumes"),
  )
    .option("--revision <rev>", "branch, tag or commit (default main)")
    .option("--cancel", "stop the server's running download of this repo (the partial file stays for a resume)")
    .option("--detach", "start the download and return at once")
    .option("--progress-every <sec>", "without a terminal: seconds between progress lines", nonNegativeNumber, 2)
    .option("--json", "print the final download snapshot as JSON")
    .action((repo: string, options: PullOptions) => run((io) => pull(repo, options, io)));
}
