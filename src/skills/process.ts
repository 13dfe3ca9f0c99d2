/**
 * Runs a process-backed skill: a fixed argv (no shell), the arguments as JSON on stdin, the result as JSON on
 * stdout. The process gets its own process group, so a timeout, an abort or an output over the cap kills the
 * whole group — a script's own children included — and nothing outlives the call. Only allowlisted environment
 * variables pass.
 */
import { spawn } from "node:child_process";
import { LmxError } from "../errors/codes.js";

export interface ProcessSpec {
  /** Skill name, for messages. */
  name: string;
  argv: readonly string[];
  cwd: string;
  envAllow: readonly string[];
  env: Readonly<Record<string, string>>;
  maxOutputBytes: number;
}

const KILL_GRACE_MS = 1_000;
const STDERR_TAIL = 2_000;

export function skillEnvironment(allow: readonly string[], fixed: Readonly<Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of allow) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...fixed };
}

export function runSkillProcess(spec: ProcessSpec, args: Record<string, unknown>, signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const child = spawn(spec.argv[0]!, spec.argv.slice(1), {
      cwd: spec.cwd,
      env: skillEnvironment(spec.envAllow, spec.env),
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
      shell: false,
    });
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = "";
    let stderrBytes = 0;
    let failure: LmxError | null = null;
    let graceTimer: NodeJS.Timeout | undefined;

    const killGroup = (sig: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // ESRCH: the group is already gone
      }
    };
    const stop = (error: LmxError) => {
      failure ??= error;
      killGroup("SIGTERM");
      graceTimer ??= setTimeout(() => killGroup("SIGKILL"), KILL_GRACE_MS);
      graceTimer.unref();
    };
    const onAbort = () => stop(signal.reason instanceof LmxError ? signal.reason : new LmxError("skill_failed", `skill '${spec.name}' was stopped`));
    signal.addEventListener("abort", onAbort, { once: true });

    child.stdout.on("data", (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > spec.maxOutputBytes) {
        stop(new LmxError("skill_failed", `skill '${spec.name}' printed more than ${spec.maxOutputBytes} bytes (max_output_bytes); it was stopped`));
        child.stdout.destroy();
        return;
      }
      stdout.push(chunk);
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderrBytes += chunk.length;
      if (stderrBytes > spec.maxOutputBytes) {
        stop(new LmxError("skill_failed", `skill '${spec.name}' wrote more than ${spec.maxOutputBytes} bytes to stderr; it was stopped`));
        child.stderr.destroy();
        return;
      }
      stderr = (stderr + chunk.toString("utf8")).slice(-STDERR_TAIL);
    });
    // a program that never reads its stdin closes the pipe: not an error of ours
    child.stdin.on("error", () => undefined);
    child.stdin.end(JSON.stringify(args));

    child.on("error", (error) => {
      signal.removeEventListener("abort", onAbort);
      reject(new LmxError("skill_failed", `skill '${spec.name}' could not start ${spec.argv[0]}: ${error.message}`));
    });
    child.on("close", (code, sig) => {
      signal.removeEventListener("abort", onAbort);
      // whatever the script left behind in its group goes with it
      killGroup("SIGKILL");
      clearTimeout(graceTimer);
      if (failure) return reject(failure);
      if (code !== 0) {
        const tail = stderr.trim() ? `: ${stderr.trim().slice(-500)}` : "";
        return reject(new LmxError("skill_failed", `skill '${spec.name}' exited with ${sig ?? `code ${code}`}${tail}`));
      }
      const text = Buffer.concat(stdout).toString("utf8").trim();
      if (text === "") return reject(new LmxError("skill_failed", `skill '${spec.name}' printed nothing; it must print one JSON value`));
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new LmxError("skill_failed", `skill '${spec.name}' printed something that is not JSON: ${text.slice(0, 200)}`));
      }
    });
  });
}
