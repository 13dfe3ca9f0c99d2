/** docs/cli.md's exit-code table is the one place that lists them: it must say what the code does. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { BENCH_EXIT } from "../../src/bench/gate.js";
import { EXIT } from "../../src/cli/exit.js";
import { PROJECT_ROOT } from "../helpers/models.js";

function table(): Map<number, string[]> {
  const doc = readFileSync(path.join(PROJECT_ROOT, "docs", "cli.md"), "utf8");
  const section = doc.slice(doc.indexOf("## Exit codes"), doc.indexOf("\n## ", doc.indexOf("## Exit codes") + 1));
  const rows = new Map<number, string[]>();
  for (const line of section.split("\n")) {
    const cells = /^\| (\d+) \|(.*)\|$/.exec(line);
    if (cells)
      rows.set(
        Number(cells[1]),
        cells[2]!.split(" | ").map((c) => c.trim()),
      );
  }
  return rows;
}

test("every client and bench exit code is in docs/cli.md's table, in its column, and nothing else is", () => {
  const rows = table();
  const client = [...rows].filter(([, cells]) => cells[0] !== "—").map(([code]) => code);
  assert.deepEqual(
    client.sort((a, b) => a - b),
    Object.values(EXIT).sort((a, b) => a - b),
  );
  const bench = [...rows].filter(([, cells]) => cells[1] !== "—").map(([code]) => code);
  assert.deepEqual(
    bench.sort((a, b) => a - b),
    Object.values(BENCH_EXIT).sort((a, b) => a - b),
  );
  assert.match(rows.get(BENCH_EXIT.regression)![1]!, /slower than the baseline/);
  assert.match(rows.get(BENCH_EXIT.noBaseline)![1]!, /no baseline/);
  assert.match(rows.get(EXIT.unreachable)![0]!, /Cannot reach the server/);
  assert.match(rows.get(EXIT.auth)![0]!, /refused the key/);
  const readme = readFileSync(path.join(PROJECT_ROOT, "README.md"), "utf8");
  assert.match(readme, /docs\/cli\.md#exit-codes/, "the README points at the table instead of keeping a second list");
});
