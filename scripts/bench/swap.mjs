#!/usr/bin/env node
// Kept for scripts/bench/scenarios.sh: the same as `lmx bench --scenario swap` (src/bench/scenarios/swap.ts).
import { spawnSync } from "node:child_process";
import path from "node:path";
const cli = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../dist/src/cli/main.js");
const result = spawnSync(process.execPath, [cli, "bench", "--scenario", "swap", ...process.argv.slice(2)], { stdio: "inherit" });
process.exit(result.status ?? 1);
