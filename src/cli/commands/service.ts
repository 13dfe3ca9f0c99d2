/**
 * `lmx service install|uninstall|status`: run `lmx serve` under systemd (Linux) or launchd (macOS). The files
 * come from src/service/ (pure, tested on any OS); this command only gathers the inputs, prints or applies the
 * plan, and checks that the server answers afterwards.
 */
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { InvalidArgumentError, Option, type Command } from "commander";
import { ConfigError, loadConfig } from "../../config/load.js";
import { applyPlan, runCommand, type StepReport } from "../../service/install.js";
import { installPlan, shellQuote, statusCommands, uninstallPlan, type ServicePlan } from "../../service/plan.js";
import { ServiceError, buildServiceSpec, serviceFilePath, type ServicePlatform, type ServiceSpec } from "../../service/spec.js";
import { printJson, run, type Io } from "../command-kit.js";
import { CliError, EXIT, usageError } from "../exit.js";
import { urlForListenAddress } from "../target.js";

interface ServiceOptions {
  user?: boolean;
  system?: boolean;
  dryRun?: boolean;
  config?: string;
  logDir?: string;
  env: string[];
  runAs?: string;
  platform?: string;
  wait: boolean;
  json?: boolean;
}

function envPair(value: string, previous: string[]): string[] {
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(value)) throw new InvalidArgumentError("expected NAME=value");
  return [...previous, value];
}

interface Resolved {
  spec: ServiceSpec;
  /** Where the installed server will listen, for the check afterwards. */
  url: string;
}

function resolveService(options: ServiceOptions, dryRunAllowed: boolean): Resolved {
  const platform = options.platform ?? process.platform;
  if (platform !== "linux" && platform !== "darwin")
    throw usageError(`services are supported on Linux (systemd) and macOS (launchd), not ${platform}`);
  if (platform !== process.platform && !(dryRunAllowed && options.dryRun)) throw usageError(`--platform ${platform} only previews: add --dry-run`);
  if (options.user && options.system) throw usageError("choose one of --user and --system");
  const scope = options.system ? "system" : "user";
  const rawConfig = options.config ?? (process.env["LMX_CONFIG"] || null);
  const configPath = rawConfig ? path.resolve(rawConfig) : null;
  const environment = Object.fromEntries(options.env.map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]));
  // read exactly as the service will: this config and only the environment the service file sets
  let shutdownTimeoutSec: number;
  let url: string;
  try {
    const config = loadConfig({ configPath: configPath ?? undefined, env: environment });
    shutdownTimeoutSec = config.shutdown_timeout_sec;
    url = urlForListenAddress(config.host, config.port);
  } catch (error) {
    if (error instanceof ConfigError) throw usageError(error.message, "the service would fail to start with this config: fix it first");
    throw error;
  }
  const runningAsRoot = typeof process.getuid === "function" && process.getuid() === 0;
  const user = options.runAs ?? (scope === "system" ? process.env["SUDO_USER"] || (runningAsRoot ? null : os.userInfo().username) : null);
  try {
    const spec = buildServiceSpec({
      platform: platform as ServicePlatform,
      scope,
      nodePath: process.execPath,
      cliPath: fileURLToPath(new URL("../main.js", import.meta.url)),
      configPath,
      environment,
      logDir: options.logDir ? path.resolve(options.logDir) : null,
      user,
      shutdownTimeoutSec,
      xdgConfigHome: process.env["XDG_CONFIG_HOME"] || null,
    });
    return { spec, url };
  } catch (error) {
    if (error instanceof ServiceError) throw usageError(error.message);
    throw error;
  }
}

function printPlan(plan: ServicePlan, io: Io): void {
  for (const step of plan.steps) {
    if (step.kind === "write") io.out(`# would write ${step.path}:\n${step.contents}\n`);
  }
  io.out("# would run:\n");
  for (const step of plan.steps) {
    if (step.kind === "mkdir") io.out(`mkdir -p ${shellQuote([step.path])}\n`);
    else if (step.kind === "remove") io.out(`rm -f ${shellQuote([step.path])}\n`);
    else if (step.kind === "run") io.out(`${shellQuote(step.argv)}${step.mayFail ? "  # may fail harmlessly" : ""}\n`);
  }
}

function describeStep(report: StepReport): string {
  const { step } = report;
  const what =
    step.kind === "run"
      ? shellQuote(step.argv)
      : step.kind === "write"
        ? `wrote ${step.path}`
        : step.kind === "remove"
          ? `removed ${step.path}`
          : `mkdir -p ${step.path}`;
  const mark = report.ok ? "ok  " : step.kind === "run" && step.mayFail ? "skip" : "FAIL";
  const output = !report.ok && report.output ? ` — ${report.output.split("\n")[0]}` : "";
  return `${mark}  ${what}${output}\n`;
}

async function answers(url: string, waitMs: number): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  do {
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1_000) });
      if (res.ok) return true;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  } while (Date.now() < deadline);
  return false;
}

function apply(plan: ServicePlan, spec: ServiceSpec, io: Io): void {
  try {
    applyPlan(plan, (report) => io.out(describeStep(report)));
  } catch (error) {
    if (!(error instanceof ServiceError)) throw error;
    throw new CliError(
      error.message,
      EXIT.failed,
      spec.scope === "system"
        ? "system services need root: run it with sudo"
        : spec.platform === "linux"
          ? "is systemd running for your user? (`systemctl --user status`)"
          : null,
    );
  }
}

async function install(options: ServiceOptions, io: Io): Promise<number> {
  const { spec, url } = resolveService(options, true);
  const replacing = existsSync(serviceFilePath(spec));
  const plan = installPlan(spec, replacing);
  if (options.dryRun) {
    if (options.json) printJson(io, { dry_run: true, ...plan });
    else printPlan(plan, io);
    return EXIT.ok;
  }
  apply(plan, spec, io);
  for (const note of plan.notes) io.out(`${note}\n`);
  if (!options.wait) return EXIT.ok;
  if (await answers(url, 15_000)) {
    io.out(`${io.style.green("running:")} ${url} answers\n`);
    return EXIT.ok;
  }
  throw new CliError(
    `the service is installed but ${url} does not answer after 15 s`,
    EXIT.failed,
    plan.notes[0] ? `read the ${plan.notes[0]}` : null,
  );
}

async function uninstall(options: ServiceOptions, io: Io): Promise<number> {
  const { spec } = resolveService(options, true);
  const plan = uninstallPlan(spec);
  if (options.dryRun) {
    if (options.json) printJson(io, { dry_run: true, ...plan });
    else printPlan(plan, io);
    return EXIT.ok;
  }
  if (!existsSync(plan.file)) io.out(`${plan.file} is not installed; stopping anything left anyway\n`);
  apply(plan, spec, io);
  for (const note of plan.notes) io.out(`${note}\n`);
  return EXIT.ok;
}

async function status(options: ServiceOptions, io: Io): Promise<number> {
  const { spec, url } = resolveService(options, false);
  const file = serviceFilePath(spec);
  const installed = existsSync(file);
  const results = statusCommands(spec).map((argv) => ({ argv, ...runCommand(argv) }));
  let running: boolean;
  let detail: string[];
  if (spec.platform === "darwin") {
    const listed = results[0]!;
    const pid = /"PID"\s*=\s*(\d+)/.exec(listed.stdout)?.[1] ?? null;
    running = listed.status === 0 && pid !== null;
    detail = [listed.error ?? (listed.status === 0 ? `loaded${pid ? `, pid ${pid}` : ", not running"}` : "not loaded")];
  } else {
    const [enabled, active] = results;
    running = active!.stdout.trim() === "active";
    detail = [
      `enabled: ${enabled!.error ?? (enabled!.stdout.trim() || "unknown")}`,
      `active: ${active!.error ?? (active!.stdout.trim() || "unknown")}`,
    ];
  }
  const serverUp = await answers(url, 0);
  if (options.json) printJson(io, { file, installed, running, manager: detail, url, answers: serverUp });
  else {
    io.out(`${file} ${installed ? "(installed)" : "(not installed)"}\n`);
    for (const line of detail) io.out(`${line}\n`);
    io.out(`${url} ${serverUp ? "answers" : "does not answer"}\n`);
  }
  return installed && running ? EXIT.ok : EXIT.failed;
}

function serviceOptions(command: Command): Command {
  return command
    .option("--user", "a per-user service (default): ~/.config/systemd/user, ~/Library/LaunchAgents")
    .option("--system", "a system service (needs root): /etc/systemd/system, /Library/LaunchDaemons")
    .option("-c, --config <file>", "the config file the service runs with (default LMX_CONFIG; without one: defaults)")
    .option("--json", "print the result as JSON")
    .addOption(new Option("--platform <os>", "preview another OS's service file (with --dry-run)").choices(["linux", "darwin"]));
}

export function registerServiceCommand(program: Command): void {
  const service = program.command("service").description("install lmx serve as a systemd (Linux) or launchd (macOS) service");
  serviceOptions(service.command("install").description("write the service file, enable and start it"))
    .option("--dry-run", "print the file and the commands; change nothing")
    .option("--log-dir <dir>", "write lmx.out.log/lmx.err.log there (Linux default: the journal; macOS: ~/Library/Logs/opta-lmx)")
    .option("--env <NAME=value>", "an environment variable for the server (repeatable)", envPair, [])
    .option("--run-as <user>", "system services on Linux: the account to run as (default: $SUDO_USER)")
    .option("--no-wait", "do not wait for the server to answer")
    .action((options: ServiceOptions) => run((io) => install(options, io)));
  serviceOptions(service.command("uninstall").description("stop and disable the service, remove its file"))
    .option("--dry-run", "print the commands; change nothing")
    .action((options: ServiceOptions) => run((io) => uninstall({ ...options, env: [], wait: false }, io)));
  serviceOptions(service.command("status").description("is the service installed, enabled, running, and does the server answer?")).action(
    (options: ServiceOptions) => run((io) => status({ ...options, env: [], wait: false }, io)),
  );
}
