/** Plain-text rendering shared by commands: sizes, durations, tables, and colour that only a terminal gets. */

interface ColorTarget {
  isTTY?: boolean;
}

/** Colour only on a terminal, never with NO_COLOR (https://no-color.org) or TERM=dumb. */
export function colorEnabled(stream: ColorTarget = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  if (!stream.isTTY) return false;
  if (env["NO_COLOR"] !== undefined && env["NO_COLOR"] !== "") return false;
  return env["TERM"] !== "dumb";
}

export interface Style {
  bold(text: string): string;
  dim(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  red(text: string): string;
  cyan(text: string): string;
}

const sgr = (open: number, close: number) => (text: string) => `\x1b[${open}m${text}\x1b[${close}m`;
const plainText = (text: string) => text;

export function styleFor(enabled: boolean): Style {
  if (!enabled) return { bold: plainText, dim: plainText, green: plainText, yellow: plainText, red: plainText, cyan: plainText };
  return { bold: sgr(1, 22), dim: sgr(2, 22), green: sgr(32, 39), yellow: sgr(33, 39), red: sgr(31, 39), cyan: sgr(36, 39) };
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return "-";
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${UNITS[unit]}`;
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "-";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(s / 3600);
  if (h < 48) return `${h}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, "0")}h`;
}

export type Align = "left" | "right";

export interface Column<Row> {
  header: string;
  value: (row: Row) => string;
  align?: Align;
  /** Colour applied after padding, so escape codes never upset the widths. */
  color?: (row: Row, text: string) => string;
}

export function renderTable<Row>(columns: ReadonlyArray<Column<Row>>, rows: readonly Row[], style: Style): string {
  const cells = rows.map((row) => columns.map((c) => c.value(row)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
  const pad = (text: string, i: number) => (columns[i]!.align === "right" ? text.padStart(widths[i]!) : text.padEnd(widths[i]!));
  const trim = (line: string) => line.replace(/\s+$/, "");
  const lines = [trim(columns.map((c, i) => style.bold(pad(c.header, i))).join("  "))];
  cells.forEach((rowCells, r) => {
    const row = rows[r]!;
    lines.push(trim(rowCells.map((text, i) => (columns[i]!.color ? columns[i]!.color!(row, pad(text, i)) : pad(text, i))).join("  ")));
  });
  return `${lines.join("\n")}\n`;
}

/** Two-column "label  value" lines, labels padded to one width. */
export function renderPairs(pairs: ReadonlyArray<readonly [string, string]>, style: Style): string {
  const width = Math.max(...pairs.map(([label]) => label.length));
  return pairs.map(([label, value]) => `${style.bold(label.padEnd(width))}  ${value}`).join("\n") + "\n";
}
