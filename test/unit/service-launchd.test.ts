/**
 * The generated launchd plist, parsed back. No plist package is a dependency, so the test carries a strict
 * parser for exactly the subset the writer emits (it rejects any other element, stray text, bare `&` or `<`),
 * and cross-checks with Python's plistlib (an expat-based reader) where python3 exists.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { escapeXml, launchdJob, renderLaunchdPlist, renderPlist, type PlistValue } from "../../src/service/launchd.js";
import { buildServiceSpec, LAUNCHD_LABEL, ServiceError } from "../../src/service/spec.js";

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function decodeText(raw: string): string {
  assert.ok(!raw.includes("<"), `bare < in ${JSON.stringify(raw)}`);
  return raw.replace(/&([a-z]+|#\d+|#x[0-9a-fA-F]+);|&/g, (whole, name: string | undefined) => {
    assert.ok(name, `bare & in ${JSON.stringify(raw)}`);
    if (name.startsWith("#x")) return String.fromCodePoint(parseInt(name.slice(2), 16));
    if (name.startsWith("#")) return String.fromCodePoint(Number(name.slice(1)));
    assert.ok(name in ENTITIES, `unknown entity ${whole}`);
    return ENTITIES[name]!;
  });
}

/** A recursive-descent reader of <dict>/<array>/<key>/<string>/<integer>/<true/>/<false/>. */
function parsePlist(xml: string): PlistValue {
  let pos = 0;
  const skipSpace = () => {
    while (/\s/.test(xml[pos] ?? "")) pos++;
  };
  const expect = (literal: string) => {
    assert.equal(xml.slice(pos, pos + literal.length), literal, `expected ${literal} at ${pos}`);
    pos += literal.length;
  };
  const tag = (): string => {
    skipSpace();
    const match = /^<(\/?)([a-z]+)(\/?)>/.exec(xml.slice(pos));
    assert.ok(match, `expected a tag at ${pos}: ${JSON.stringify(xml.slice(pos, pos + 30))}`);
    pos += match[0].length;
    return `${match[1]}${match[2]}${match[3]}`;
  };
  const textUntil = (close: string): string => {
    const end = xml.indexOf(close, pos);
    assert.ok(end >= 0, `missing ${close}`);
    const raw = xml.slice(pos, end);
    pos = end + close.length;
    return decodeText(raw);
  };
  const value = (opened: string): PlistValue => {
    switch (opened) {
      case "string":
        return textUntil("</string>");
      case "integer": {
        const text = textUntil("</integer>");
        assert.match(text, /^-?\d+$/);
        return Number(text);
      }
      case "true/":
        return true;
      case "false/":
        return false;
      case "array": {
        const items: PlistValue[] = [];
        for (let next = tag(); next !== "/array"; next = tag()) items.push(value(next));
        return items;
      }
      case "dict": {
        const dict: Record<string, PlistValue> = {};
        for (let next = tag(); next !== "/dict"; next = tag()) {
          assert.equal(next, "key", "a dict holds key/value pairs");
          const key = textUntil("</key>");
          assert.ok(!(key in dict), `duplicate key ${key}`);
          dict[key] = value(tag());
        }
        return dict;
      }
      default:
        assert.fail(`unexpected element <${opened}>`);
    }
  };
  expect('<?xml version="1.0" encoding="UTF-8"?>');
  skipSpace();
  expect('<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">');
  skipSpace();
  expect('<plist version="1.0">');
  const root = value(tag());
  assert.equal(tag(), "/plist");
  skipSpace();
  assert.equal(pos, xml.length, "nothing after </plist>");
  return root;
}

const spec = buildServiceSpec({
  platform: "darwin",
  scope: "user",
  nodePath: "/Users/ann & bob/.nvm/versions/node/v20/bin/node",
  cliPath: "/Users/ann & bob/lmx <dev>/dist/src/cli/main.js",
  configPath: `/Users/ann & bob/it's "lmx".yaml`,
  environment: { HF_TOKEN: "t<o>k&e'n\"", GREETING: "héllo → 世界" },
  homeDir: "/Users/ann & bob",
});

test("the plist parses back to exactly the job: label, arguments, keep-alive, logs, environment", () => {
  const xml = renderLaunchdPlist(spec);
  const parsed = parsePlist(xml) as Record<string, PlistValue>;
  assert.deepEqual(parsed, launchdJob(spec));
  assert.equal(parsed["Label"], LAUNCHD_LABEL);
  assert.deepEqual(parsed["ProgramArguments"], [spec.nodePath, spec.cliPath, "serve", "--config", spec.configPath]);
  assert.equal(parsed["RunAtLoad"], true);
  assert.deepEqual(parsed["KeepAlive"], { SuccessfulExit: false });
  assert.equal(parsed["WorkingDirectory"], "/Users/ann & bob");
  assert.equal(parsed["StandardOutPath"], "/Users/ann & bob/Library/Logs/opta-lmx/lmx.out.log");
  assert.equal(parsed["StandardErrorPath"], "/Users/ann & bob/Library/Logs/opta-lmx/lmx.err.log");
  assert.deepEqual(parsed["EnvironmentVariables"], {
    NODE_ENV: "production",
    LMX_CONFIG: `/Users/ann & bob/it's "lmx".yaml`,
    HF_TOKEN: "t<o>k&e'n\"",
    GREETING: "héllo → 世界",
  });
});

test("Python's plistlib reads the same values", (t) => {
  const probe = spawnSync("python3", ["-c", "import plistlib"]);
  if (probe.status !== 0) {
    t.skip("python3 is not installed: the cross-check with plistlib is skipped (the strict parser above still ran)");
    return;
  }
  const result = spawnSync("python3", ["-c", "import json, plistlib, sys; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))"], {
    input: renderLaunchdPlist(spec),
    encoding: "utf8",
  });
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), launchdJob(spec));
});

test("the writer escapes markup and refuses what XML cannot carry", () => {
  assert.equal(escapeXml(`<a href="x">&'</a>`), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;");
  assert.throws(() => escapeXml("bell\u0007"), ServiceError);
  assert.throws(() => renderPlist({ Ratio: 0.5 }), ServiceError);
  assert.deepEqual(parsePlist(renderPlist({ Empty: "", List: [], Nested: { Deep: [1, true, "x"] } })), {
    Empty: "",
    List: [],
    Nested: { Deep: [1, true, "x"] },
  });
  assert.throws(
    () => parsePlist(renderPlist({ A: "x" }).replace("<string>x</string>", "<string>x & y</string>")),
    "the parser is strict about bare &",
  );
});

test("the system daemon logs to /Library/Logs", () => {
  const system = buildServiceSpec({ platform: "darwin", scope: "system", nodePath: "/usr/local/bin/node", cliPath: "/opt/lmx/dist/src/cli/main.js" });
  const job = parsePlist(renderLaunchdPlist(system)) as Record<string, PlistValue>;
  assert.equal(job["StandardOutPath"], "/Library/Logs/opta-lmx/lmx.out.log");
  assert.deepEqual(job["ProgramArguments"], ["/usr/local/bin/node", "/opt/lmx/dist/src/cli/main.js", "serve"]);
});
