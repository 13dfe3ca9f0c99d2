/** `npm start` compiles only when a source changed since its last build (scripts/build-if-stale.mjs). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { PROJECT_ROOT } from "../helpers/models.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-stale-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const build = () => spawnSync(process.execPath, [path.join(PROJECT_ROOT, "scripts", "build-if-stale.mjs"), dir], { encoding: "utf8" });

test("the first start builds, the next ones do not, a changed source builds again", () => {
  writeFileSync(
    path.join(dir, "tsconfig.json"),
    JSON.stringify({ compilerOptions: { outDir: "dist", rootDir: ".", module: "NodeNext", target: "ES2022", types: [] }, include: ["src/**/*.ts"] }),
  );
  writeFileSync(path.join(dir, "package.json"), JSON.stringify({ type: "module" }));
  mkdirSync(path.join(dir, "src"));
  const source = path.join(dir, "src", "a.ts");
  writeFileSync(source, "export const a: number = 1;\n");
  const output = path.join(dir, "dist", "src", "a.js");

  const first = build();
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stderr, /building \(no build yet\)/);
  const builtAt = statSync(output).mtimeMs;

  const second = build();
  assert.equal(second.status, 0, second.stderr);
  assert.equal(second.stderr, "", "nothing changed: no build");
  assert.equal(statSync(output).mtimeMs, builtAt);

  const later = new Date(Date.now() + 60_000);
  utimesSync(source, later, later);
  const third = build();
  assert.equal(third.status, 0, third.stderr);
  assert.match(third.stderr, /building \(src\/a\.ts changed\)/);
});

test("a failed build is not stamped: the next start tries again", () => {
  const broken = mkdtempSync(path.join(dir, "broken-"));
  writeFileSync(
    path.join(broken, "tsconfig.json"),
    JSON.stringify({ compilerOptions: { outDir: "dist", rootDir: ".", types: [], strict: true }, include: ["src/**/*.ts"] }),
  );
  mkdirSync(path.join(broken, "src"));
  writeFileSync(path.join(broken, "src", "b.ts"), "export const b: number = 'not a number';\n");
  const run = () => spawnSync(process.execPath, [path.join(PROJECT_ROOT, "scripts", "build-if-stale.mjs"), broken], { encoding: "utf8" });
  assert.notEqual(run().status, 0);
  const again = run();
  assert.notEqual(again.status, 0);
  assert.match(again.stderr, /building \(no build yet\)/);
});
