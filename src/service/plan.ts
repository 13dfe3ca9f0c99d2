/**
 * Installing, removing and inspecting the service as a list of steps — files to write or remove and commands to
 * run — so `--dry-run` can print exactly what a real run does, and tests can check it on any OS.
 */
import path from "node:path";
import { renderLaunchdPlist } from "./launchd.js";
import { LAUNCHD_LABEL, SYSTEMD_UNIT_NAME, logFiles, serviceFilePath, type ServiceSpec } from "./spec.js";
import { renderSystemdUnit } from "./systemd.js";

export type ServiceStep =
  | { kind: "mkdir"; path: string }
  | { kind: "write"; path: string; contents: string }
  | { kind: "remove"; path: string }
  /** `mayFail`: e.g. stopping a service that is not running; the plan goes on. */
  | { kind: "run"; argv: string[]; mayFail?: boolean };

export interface ServicePlan {
  file: string;
  steps: ServiceStep[];
  /** Things the user should know afterwards (logs, lingering). */
  notes: string[];
}

function systemctl(spec: ServiceSpec, ...args: string[]): string[] {
  return ["systemctl", ...(spec.scope === "user" ? ["--user"] : []), ...args];
}

export function renderServiceFile(spec: ServiceSpec): string {
  return spec.platform === "darwin" ? renderLaunchdPlist(spec) : renderSystemdUnit(spec);
}

function logNotes(spec: ServiceSpec): string[] {
  const logs = logFiles(spec);
  if (logs) return [`logs: ${logs.out} and ${logs.err}`];
  return [`logs: journalctl ${spec.scope === "user" ? "--user " : ""}-u ${SYSTEMD_UNIT_NAME} -f`];
}

/** `replacing`: a service file exists already, so the running server is restarted onto the new one. */
export function installPlan(spec: ServiceSpec, replacing: boolean): ServicePlan {
  const file = serviceFilePath(spec);
  const steps: ServiceStep[] = [{ kind: "mkdir", path: path.dirname(file) }, ...(spec.logDir ? [{ kind: "mkdir" as const, path: spec.logDir }] : [])];
  const notes = logNotes(spec);
  if (spec.platform === "darwin") {
    // launchd keeps the loaded definition until it is unloaded: unload the old one first
    if (replacing) steps.push({ kind: "run", argv: ["launchctl", "unload", file], mayFail: true });
    steps.push({ kind: "write", path: file, contents: renderLaunchdPlist(spec) });
    steps.push({ kind: "run", argv: ["launchctl", "load", "-w", file] });
  } else {
    steps.push({ kind: "write", path: file, contents: renderSystemdUnit(spec) });
    steps.push({ kind: "run", argv: systemctl(spec, "daemon-reload") });
    steps.push({ kind: "run", argv: systemctl(spec, "enable", "--now", SYSTEMD_UNIT_NAME) });
    // enable --now leaves an already running server on the old definition
    if (replacing) steps.push({ kind: "run", argv: systemctl(spec, "restart", SYSTEMD_UNIT_NAME) });
    if (spec.scope === "user") notes.push("to keep it running while you are logged out (and start it at boot): loginctl enable-linger $USER");
  }
  return { file, steps, notes };
}

export function uninstallPlan(spec: ServiceSpec): ServicePlan {
  const file = serviceFilePath(spec);
  if (spec.platform === "darwin") {
    return {
      file,
      steps: [
        { kind: "run", argv: ["launchctl", "unload", "-w", file], mayFail: true },
        { kind: "remove", path: file },
      ],
      notes: spec.logDir ? [`logs are kept in ${spec.logDir}`] : [],
    };
  }
  return {
    file,
    steps: [
      { kind: "run", argv: systemctl(spec, "disable", "--now", SYSTEMD_UNIT_NAME), mayFail: true },
      { kind: "remove", path: file },
      { kind: "run", argv: systemctl(spec, "daemon-reload") },
    ],
    notes: [],
  };
}

/** Commands whose output says whether the service is enabled and running. */
export function statusCommands(spec: ServiceSpec): string[][] {
  if (spec.platform === "darwin") return [["launchctl", "list", LAUNCHD_LABEL]];
  return [systemctl(spec, "is-enabled", SYSTEMD_UNIT_NAME), systemctl(spec, "is-active", SYSTEMD_UNIT_NAME)];
}

/** A shell-readable rendering of a command, for --dry-run and messages. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}
