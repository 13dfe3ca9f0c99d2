/** The one-line start-up messages of `lmx serve`, and the pieces they are made of. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { listenError, StartupError } from "../../src/gateway/startup.js";
import { makeDirSync } from "../../src/util/make-dir.js";
import { findPortHolder } from "../../src/util/port-holder.js";

const errno = (code: string) => Object.assign(new Error(code), { code });

test("a taken 1234 mentions LM Studio, whose default it also is; other ports do not", () => {
  const lmStudio = listenError(errno("EADDRINUSE"), "127.0.0.1", 1234);
  assert.ok(lmStudio instanceof StartupError);
  assert.match(lmStudio.message, /port 1234 is already in use.*LM Studio's default port.*--port, port: in the config, or LMX_PORT/);
  assert.doesNotMatch(listenError(errno("EADDRINUSE"), "127.0.0.1", 45_999)!.message, /LM Studio/);
  assert.match(listenError(errno("EACCES"), "0.0.0.0", 80)!.message, /below 1024 need root/);
  assert.match(listenError(errno("EADDRNOTAVAIL"), "::2", 1234)!.message, /^cannot listen on \[::2\]:1234: ::2 is not an address of this machine/);
  assert.equal(listenError(errno("EMFILE"), "127.0.0.1", 1234), null, "anything else is not a setting to change");
});

test("the holder of a port is found in /proc on Linux", { skip: process.platform !== "linux" && "reads /proc" }, async () => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const holder = findPortHolder((server.address() as net.AddressInfo).port);
    assert.equal(holder?.pid, process.pid);
    assert.match(holder?.command ?? "", /node/);
  } finally {
    server.close();
  }
});

test(
  "makeDirSync makes nested folders, accepts existing ones, and ends with an error where mkdir -p would loop",
  { skip: process.platform !== "linux" && "needs /proc" },
  () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-mkdir-"));
    try {
      makeDirSync(path.join(dir, "a", "b", "c"));
      makeDirSync(path.join(dir, "a", "b", "c"));
      writeFileSync(path.join(dir, "file"), "x");
      assert.throws(() => makeDirSync(path.join(dir, "file", "sub")), { code: "ENOTDIR" });
      assert.throws(() => makeDirSync(`/proc/lmx-unit-${process.pid}/x`), { code: "ENOENT" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
