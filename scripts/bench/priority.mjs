#!/usr/bin/env node
// Kept for scripts/bench/scenarios.sh: the same as `lmx bench --scenario priority` (src/bench/scenarios/priority.ts).
import { spawnSync } from "node:child_process";
import path from "node:path";
const cli = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../dist/src/cli/main.js");
const result = spawnSync(process.execPath, [cli, "bench", "--scenario", "priority", ...process.argv.slice(2)], { stdio: "inherit" });
process.exit(result.status ?? 1);
