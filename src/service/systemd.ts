/**
 * The systemd unit for `lmx serve`. Values are escaped for systemd's own syntax: `%` starts a specifier
 * (%h, %u…) and `$` a variable in ExecStart, so a path containing either is written `%%` / `$$`, and words
 * with spaces or quotes are double-quoted with C-style escapes (systemd.service(5), "Command lines").
 */
import { logFiles, programArguments, type ServiceSpec } from "./spec.js";

const PLAIN_WORD = /^[A-Za-z0-9_@+=:,./-]+$/;

export function escapeSpecifiers(value: string): string {
  return value.replace(/%/g, "%%");
}

/** One ExecStart argument, read back by systemd as exactly `arg`. */
export function quoteExecArg(arg: string): string {
  if (arg === "") return '""';
  if (PLAIN_WORD.test(arg)) return arg;
  const escaped = arg.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\t/g, "\\t").replace(/\$/g, "$$$$").replace(/%/g, "%%");
  return `"${escaped}"`;
}

/** Environment="NAME=value": quoted so spaces survive; `%` escaped; Environment= expands no `$`. */
export function environmentLine(name: string, value: string): string {
  const escaped = `${name}=${value}`.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%");
  return `Environment="${escaped}"`;
}

export function renderSystemdUnit(spec: ServiceSpec): string {
  const logs = logFiles(spec);
  const unit = [
    "# Opta LMX, written by `lmx service install`. Re-run it to change this file; `lmx service uninstall` removes it.",
    "[Unit]",
    "Description=Opta LMX local LLM server (OpenAI-compatible)",
    // a user manager has no network targets; system services wait for the network so non-loopback binds work
    ...(spec.scope === "system" ? ["Wants=network-online.target", "After=network-online.target"] : []),
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${programArguments(spec).map(quoteExecArg).join(" ")}`,
    `WorkingDirectory=${escapeSpecifiers(spec.workingDirectory)}`,
    ...Object.entries(spec.environment).map(([name, value]) => environmentLine(name, value)),
    ...(spec.user ? [`User=${spec.user}`] : []),
    "Restart=on-failure",
    "RestartSec=2",
    // exit 2 is a configuration error: restarting cannot fix it, so stop and let `systemctl status` show why
    "RestartPreventExitStatus=2",
    // SIGTERM drains in-flight requests for shutdown_timeout_sec; give it that long before SIGKILL
    "KillSignal=SIGTERM",
    `TimeoutStopSec=${spec.stopTimeoutSec}`,
    `StandardOutput=${logs ? `append:${escapeSpecifiers(logs.out)}` : "journal"}`,
    `StandardError=${logs ? `append:${escapeSpecifiers(logs.err)}` : "journal"}`,
    "",
    "[Install]",
    `WantedBy=${spec.scope === "system" ? "multi-user.target" : "default.target"}`,
  ];
  return `${unit.join("\n")}\n`;
}
