/** The generated systemd unit: parsed back section by section, ExecStart unquoted by systemd's rules, and checked by systemd-analyze. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { buildServiceSpec, programArguments, type ServiceSpecInput } from "../../src/service/spec.js";
import { quoteExecArg, renderSystemdUnit } from "../../src/service/systemd.js";

type Unit = Map<string, Array<[string, string]>>;

/** Strict: every line is a comment, blank, a [Section] or Key=Value inside a section. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Array<[string, string]> | null = null;
  for (const [i, line] of text.split("\n").entries()) {
    if (line === "" || line.startsWith("#")) continue;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      assert.ok(!unit.has(header[1]!), `section ${header[1]} appears once`);
      section = [];
      unit.set(header[1]!, section);
      continue;
    }
    const pair = /^([A-Za-z]+)=(.*)$/.exec(line);
    assert.ok(pair && section, `line ${i + 1} is Key=Value inside a section: ${JSON.stringify(line)}`);
    section.push([pair[1]!, pair[2]!]);
  }
  return unit;
}

function values(unit: Unit, section: string, key: string): string[] {
  return (unit.get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v);
}

function single(unit: Unit, section: string, key: string): string {
  const found = values(unit, section, key);
  assert.equal(found.length, 1, `${section}.${key} is set once`);
  return found[0]!;
}

/** systemd's specifier and variable escapes, after quoting is undone. */
const unescapeWord = (word: string) => word.replace(/%%/g, "%").replace(/\$\$/g, "$");

/** ExecStart split into words as systemd does (systemd.service(5), "Command lines"). */
function execWords(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === " ") i++;
    if (i >= line.length) break;
    let word = "";
    if (line[i] === '"') {
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === "\\") {
          const next = line[i + 1]!;
          word += next === "t" ? "\t" : next === "n" ? "\n" : next;
          i += 2;
        } else word += line[i++];
      }
      assert.equal(line[i], '"', "quotes are balanced");
      i++;
      assert.ok(i >= line.length || line[i] === " ", "a quoted word ends at a space");
    } else {
      while (i < line.length && line[i] !== " ") {
        assert.ok(!['"', "'", "\\"].includes(line[i]!), `a bare word holds no quote or backslash: ${JSON.stringify(line)}`);
        word += line[i++];
      }
    }
    words.push(unescapeWord(word));
  }
  return words;
}

/** Environment="NAME=value" with C escapes inside the quotes. */
function environmentValue(raw: string): [string, string] {
  assert.match(raw, /^".*"$/);
  const inner = raw.slice(1, -1).replace(/\\(.)/g, "$1").replace(/%%/g, "%");
  const eq = inner.indexOf("=");
  return [inner.slice(0, eq), inner.slice(eq + 1)];
}

const nasty: ServiceSpecInput = {
  platform: "linux",
  scope: "user",
  nodePath: "/opt/node js/bin/node",
  cliPath: "/srv/lmx 100%/$HOME/dist/src/cli/main.js",
  configPath: `/etc/lmx/it's "quoted" 50%.yaml`,
  environment: { HF_TOKEN: 'a b"c\\d%e$f' },
  homeDir: "/home/ann",
};

test("the user unit has the three sections, the exact command line, restart policy, environment and logs", () => {
  const spec = buildServiceSpec(nasty);
  const unit = parseUnit(renderSystemdUnit(spec));
  assert.deepEqual([...unit.keys()], ["Unit", "Service", "Install"]);
  assert.deepEqual(execWords(single(unit, "Service", "ExecStart")), programArguments(spec));
  assert.deepEqual(programArguments(spec), [
    "/opt/node js/bin/node",
    "/srv/lmx 100%/$HOME/dist/src/cli/main.js",
    "serve",
    "--config",
    `/etc/lmx/it's "quoted" 50%.yaml`,
  ]);
  assert.equal(single(unit, "Service", "Restart"), "on-failure");
  assert.equal(single(unit, "Service", "RestartPreventExitStatus"), "2");
  assert.equal(single(unit, "Service", "TimeoutStopSec"), "40");
  assert.equal(unescapeWord(single(unit, "Service", "WorkingDirectory")), "/etc/lmx");
  const env = Object.fromEntries(values(unit, "Service", "Environment").map(environmentValue));
  assert.deepEqual(env, { NODE_ENV: "production", LMX_CONFIG: `/etc/lmx/it's "quoted" 50%.yaml`, HF_TOKEN: 'a b"c\\d%e$f' });
  assert.equal(single(unit, "Service", "StandardOutput"), "journal");
  assert.equal(single(unit, "Service", "StandardError"), "journal");
  assert.deepEqual(values(unit, "Service", "User"), [], "a user service runs as its user");
  assert.deepEqual(values(unit, "Unit", "After"), [], "a user manager has no network-online.target");
  assert.equal(single(unit, "Install", "WantedBy"), "default.target");
});

test("the system unit runs as the given user, waits for the network, appends to log files", () => {
  const spec = buildServiceSpec({ ...nasty, scope: "system", user: "lmx", logDir: "/var/log/opta lmx" });
  const unit = parseUnit(renderSystemdUnit(spec));
  assert.equal(single(unit, "Service", "User"), "lmx");
  assert.equal(single(unit, "Unit", "After"), "network-online.target");
  assert.equal(single(unit, "Unit", "Wants"), "network-online.target");
  assert.equal(single(unit, "Service", "StandardOutput"), "append:/var/log/opta lmx/lmx.out.log");
  assert.equal(single(unit, "Service", "StandardError"), "append:/var/log/opta lmx/lmx.err.log");
  assert.equal(single(unit, "Install", "WantedBy"), "multi-user.target");
});

test("ExecStart words: plain ones stay bare, anything else is quoted so systemd reads it back exactly", () => {
  for (const arg of ["serve", "/usr/bin/node", "--config", "a b", 'say "hi"', "back\\slash", "100%", "$HOME", "${X}", "tab\there", ";", "", "it's"]) {
    assert.deepEqual(execWords(quoteExecArg(arg)), [arg], `round trip of ${JSON.stringify(arg)}`);
  }
  assert.equal(quoteExecArg("/usr/bin/node"), "/usr/bin/node");
});

test("systemd-analyze verify accepts the generated units (and flags a broken one)", (t) => {
  if (spawnSync("systemd-analyze", ["--version"]).status !== 0) {
    t.skip("systemd-analyze is not installed (apt-get install -y systemd): only its verification is skipped");
    return;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-unit-"));
  try {
    const verify = (text: string) => {
      const file = path.join(dir, "opta-lmx.service");
      writeFileSync(file, text);
      const result = spawnSync("systemd-analyze", ["verify", file], { encoding: "utf8" });
      // verify exits 0 for settings it ignores, so every line it prints about the unit counts as a problem
      const about = `${result.stdout}${result.stderr}`.split("\n").filter((l) => l.includes("opta-lmx.service"));
      return { status: result.status, problems: about, all: `${result.stdout}${result.stderr}` };
    };
    // the executable must exist for verify; the script path is only an argument
    const real = { ...nasty, nodePath: process.execPath };
    for (const spec of [buildServiceSpec(real), buildServiceSpec({ ...real, scope: "system", user: "root", logDir: "/var/log/opta lmx" })]) {
      const result = verify(renderSystemdUnit(spec));
      if (/Failed to initialize manager/.test(result.all) && result.status !== 0) {
        t.skip(`systemd-analyze cannot run here: ${result.all.trim()}`);
        return;
      }
      assert.equal(result.status, 0, result.all);
      assert.deepEqual(result.problems, [], result.all);
    }
    const broken = verify(renderSystemdUnit(buildServiceSpec(real)).replace("Restart=on-failure", "Restart=sometimes"));
    assert.ok(
      broken.problems.some((l) => /Restart|restart/.test(l)),
      `the check notices a bad setting: ${broken.all}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
