/** Download progress as a redrawn bar (terminals) or as plain lines (logs, pipes). */
import type { DownloadSnapshot } from "./api-types.js";
import { formatBytes, formatDuration } from "./format.js";

function percent(s: DownloadSnapshot): number {
  return s.bytesTotal > 0 ? Math.min(100, Math.floor((s.bytesDone / s.bytesTotal) * 100)) : 0;
}

function rateAndEta(s: DownloadSnapshot): string {
  const rate = s.bytesPerSec ? `${formatBytes(s.bytesPerSec)}/s` : "-/s";
  const eta = s.etaSec !== null && s.etaSec !== undefined && s.bytesDone < s.bytesTotal ? `ETA ${formatDuration(s.etaSec)}` : "";
  return [rate, eta].filter(Boolean).join("  ");
}

/** `[########------------]  42%  12.0 MiB / 28.4 MiB  3.1 MiB/s  ETA 5s` */
export function progressBar(s: DownloadSnapshot, width = 24): string {
  const filled = Math.round((percent(s) / 100) * width);
  const bar = `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
  return `${bar} ${String(percent(s)).padStart(3)}%  ${formatBytes(s.bytesDone)} / ${formatBytes(s.bytesTotal)}  ${rateAndEta(s)}`;
}

/** `tiny/repo: 42% (12.0 MiB of 28.4 MiB) 3.1 MiB/s  ETA 5s` */
export function progressLine(s: DownloadSnapshot): string {
  if (s.status === "queued") return `${s.repo}: queued`;
  return `${s.repo}: ${percent(s)}% (${formatBytes(s.bytesDone)} of ${formatBytes(s.bytesTotal)}) ${rateAndEta(s)}`.trimEnd();
}
