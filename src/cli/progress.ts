/** Download progress as a redrawn bar (terminals) or as plain lines (logs, pipes). */
import type { DownloadSnapshot } from "./api-types.js";
import { formatBytes, formatDuration } from "./format.js";

function percent(s: DownloadSnapshot): number {
  return s.bytes_total > 0 ? Math.min(100, Math.floor((s.bytes_done / s.bytes_total) * 100)) : 0;
}

function rateAndEta(s: DownloadSnapshot): string {
  const rate = s.bytes_per_sec ? `${formatBytes(s.bytes_per_sec)}/s` : "-/s";
  const eta = s.eta_sec !== null && s.eta_sec !== undefined && s.bytes_done < s.bytes_total ? `ETA ${formatDuration(s.eta_sec)}` : "";
  return [rate, eta].filter(Boolean).join("  ");
}

/** `[########------------]  42%  12.0 MiB / 28.4 MiB  3.1 MiB/s  ETA 5s` */
export function progressBar(s: DownloadSnapshot, width = 24): string {
  const filled = Math.round((percent(s) / 100) * width);
  const bar = `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
  return `${bar} ${String(percent(s)).padStart(3)}%  ${formatBytes(s.bytes_done)} / ${formatBytes(s.bytes_total)}  ${rateAndEta(s)}`;
}

/** `tiny/repo: 42% (12.0 MiB of 28.4 MiB) 3.1 MiB/s  ETA 5s` */
export function progressLine(s: DownloadSnapshot): string {
  if (s.status === "queued") return `${s.repo}: queued`;
  return `${s.repo}: ${percent(s)}% (${formatBytes(s.bytes_done)} of ${formatBytes(s.bytes_total)}) ${rateAndEta(s)}`.trimEnd();
}
