/**
 * The launchd property list for `lmx serve`. Written by a tiny XML writer that escapes every string (& < > " ')
 * and refuses characters XML 1.0 cannot carry, so any path or value round-trips through a plist parser.
 */
import { LAUNCHD_LABEL, ServiceError, logFiles, programArguments, type ServiceSpec } from "./spec.js";

export type PlistValue = string | number | boolean | PlistValue[] | { [key: string]: PlistValue };

/** Characters XML 1.0 forbids even when escaped (tab, newline and carriage return are allowed). */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const NOT_XML_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;

export function escapeXml(text: string): string {
  if (NOT_XML_CHAR.test(text)) throw new ServiceError(`a plist string cannot contain control characters: ${JSON.stringify(text)}`);
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;");
}

function renderValue(value: PlistValue, indent: string): string[] {
  if (typeof value === "string") return [`${indent}<string>${escapeXml(value)}</string>`];
  if (typeof value === "boolean") return [`${indent}<${value ? "true" : "false"}/>`];
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new ServiceError(`only integers are written to the plist, not ${value}`);
    return [`${indent}<integer>${value}</integer>`];
  }
  const inner = `${indent}  `;
  if (Array.isArray(value)) return [`${indent}<array>`, ...value.flatMap((v) => renderValue(v, inner)), `${indent}</array>`];
  return [
    `${indent}<dict>`,
    ...Object.entries(value).flatMap(([k, v]) => [`${inner}<key>${escapeXml(k)}</key>`, ...renderValue(v, inner)]),
    `${indent}</dict>`,
  ];
}

export function renderPlist(root: { [key: string]: PlistValue }): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    ...renderValue(root, ""),
    "</plist>",
    "",
  ].join("\n");
}

/** The job's keys, as a value: tests compare what a parser reads back with this. */
export function launchdJob(spec: ServiceSpec): { [key: string]: PlistValue } {
  const logs = logFiles(spec);
  return {
    Label: LAUNCHD_LABEL,
    ProgramArguments: programArguments(spec),
    WorkingDirectory: spec.workingDirectory,
    EnvironmentVariables: { ...spec.environment },
    RunAtLoad: true,
    // restart after a crash or failed exit, not after a clean stop (like systemd's Restart=on-failure)
    KeepAlive: { SuccessfulExit: false },
    ThrottleInterval: 5,
    // seconds between SIGTERM and SIGKILL: the server drains in-flight requests in between
    ExitTimeOut: spec.stopTimeoutSec,
    ...(logs ? { StandardOutPath: logs.out, StandardErrorPath: logs.err } : {}),
  };
}

export function renderLaunchdPlist(spec: ServiceSpec): string {
  return renderPlist(launchdJob(spec));
}
