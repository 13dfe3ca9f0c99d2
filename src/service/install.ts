/** Carries out a service plan: folders, the service file, and the systemctl/launchctl commands, in order. */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { ServiceError } from "./spec.js";
import { shellQuote, type ServicePlan, type ServiceStep } from "./plan.js";

export interface StepReport {
  step: ServiceStep;
  ok: boolean;
  /** Exit status and output of a command. */
  status?: number | null;
  output?: string;
}

export interface CommandResult {
  status: number | null;
  stdout: string;
  stderr: string;
  error: string | null;
}

export function runCommand(argv: readonly string[]): CommandResult {
  const [command, ...args] = argv;
  const result = spawnSync(command!, args, { encoding: "utf8", timeout: 60_000 });
  const error = result.error
    ? (result.error as NodeJS.ErrnoException).code === "ENOENT"
      ? `${command} is not installed (not found on PATH)`
      : result.error.message
    : null;
  return { status: result.status, stdout: result.stdout ?? "", stderr: result.stderr ?? "", error };
}

/** Runs every step; stops at the first failure that is not allowed to fail, with what it said. */
export function applyPlan(
  plan: ServicePlan,
  onStep: (report: StepReport) => void = () => {},
  exec: (argv: readonly string[]) => CommandResult = runCommand,
): StepReport[] {
  const reports: StepReport[] = [];
  for (const step of plan.steps) {
    let report: StepReport;
    try {
      if (step.kind === "mkdir") {
        mkdirSync(step.path, { recursive: true });
        report = { step, ok: true };
      } else if (step.kind === "write") {
        writeFileSync(step.path, step.contents, { mode: 0o644 });
        report = { step, ok: true };
      } else if (step.kind === "remove") {
        const existed = existsSync(step.path);
        rmSync(step.path, { force: true });
        report = { step, ok: true, output: existed ? "" : "was not there" };
      } else {
        const result = exec(step.argv);
        const output = [result.error, result.stdout.trim(), result.stderr.trim()].filter(Boolean).join("\n");
        report = { step, ok: result.error === null && result.status === 0, status: result.status, output };
      }
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const hint = code === "EACCES" || code === "EPERM" ? " (permission denied: system services need sudo)" : "";
      report = { step, ok: false, output: `${(error as Error).message}${hint}` };
    }
    reports.push(report);
    onStep(report);
    if (!report.ok && !(step.kind === "run" && step.mayFail)) {
      const what = step.kind === "run" ? shellQuote(step.argv) : `${step.kind} ${step.path}`;
      throw new ServiceError(`${what} failed${report.output ? `: ${report.output}` : ""}`);
    }
  }
  return reports;
}
