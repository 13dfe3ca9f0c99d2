/** OK/WARN/FAIL check results, as `lmx connect` and `lmx doctor` report them. */
import type { Style } from "./format.js";

export type CheckStatus = "ok" | "warn" | "fail";

export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
  /** What to do about a WARN or FAIL. */
  fix: string | null;
}

export const ok = (name: string, detail: string): Check => ({ name, status: "ok", detail, fix: null });
export const warn = (name: string, detail: string, fix: string | null): Check => ({ name, status: "warn", detail, fix });
export const fail = (name: string, detail: string, fix: string | null): Check => ({ name, status: "fail", detail, fix });

export function renderChecks(checks: readonly Check[], style: Style): string {
  const width = Math.max(...checks.map((c) => c.name.length));
  const label = { ok: style.green("OK  "), warn: style.yellow("WARN"), fail: style.red("FAIL") };
  const lines: string[] = [];
  for (const check of checks) {
    lines.push(`${label[check.status]}  ${check.name.padEnd(width)}  ${check.detail}`);
    if (check.fix) lines.push(`${" ".repeat(6 + width + 2)}${style.dim("fix:")} ${check.fix}`);
  }
  return `${lines.join("\n")}\n`;
}

export function summarize(checks: readonly Check[]): { fail: number; warn: number; ok: number } {
  return {
    fail: checks.filter((c) => c.status === "fail").length,
    warn: checks.filter((c) => c.status === "warn").length,
    ok: checks.filter((c) => c.status === "ok").length,
  };
}
