/** `lmx doctor`'s rules on made-up machines: threads, memory, disks, models, port, GPU and the CUDA driver mismatch, access. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { loadConfig } from "../../src/config/load.js";
import {
  BUILD_CUDA_FROM_SOURCE,
  diskChecks,
  exposureCheck,
  gpuChecks,
  llamaServerCheck,
  memoryCheck,
  modelChecks,
  portCheck,
  threadsCheck,
} from "../../src/cli/doctor-checks.js";
import { compareVersions, cudaToolkitOf, parseNvidiaSmi, type GpuFacts } from "../../src/cli/gpu-info.js";

const config = (overrides: Record<string, unknown> = {}) => loadConfig({ env: {}, overrides: { state_dir: "/tmp/x", ...overrides } });
const GiB = 1024 ** 3;

test("threads: auto is fine (with a note about node-llama-cpp's own default on small machines); more than the cores warns", () => {
  const small = threadsCheck(2, config());
  assert.equal(small.status, "ok");
  assert.match(small.detail, /node-llama-cpp's own default would run 4 threads on these 2 cores/);
  assert.doesNotMatch(threadsCheck(16, config()).detail, /own default/);
  const over = threadsCheck(
    2,
    config({
      defaults: { threads: 8 },
      models: [
        { id: "m", path: "/m.gguf", threads: 2 },
        { id: "big", path: "/b.gguf", threads: 6 },
      ],
    }),
  );
  assert.equal(over.status, "warn");
  assert.match(over.detail, /defaults\.threads is 8, threads of model big is 6 but this machine has 2 core/);
  assert.equal(over.fix, "set threads: auto (= 2 here)");
});

test("memory: a budget above RAM or too small to hold a runner warns; low free memory warns", () => {
  assert.equal(memoryCheck(16 * GiB, 8 * GiB, config().memory).status, "ok");
  assert.match(memoryCheck(16 * GiB, 8 * GiB, config().memory).detail, /budget 14\.4 GiB of 16\.0 GiB RAM \(90%\)/);
  assert.equal(memoryCheck(16 * GiB, 8 * GiB, config({ memory: { budget_bytes: 32 * GiB } }).memory).status, "warn");
  assert.equal(memoryCheck(16 * GiB, 8 * GiB, config({ memory: { budget_bytes: 100 * 1024 * 1024 } }).memory).status, "warn");
  assert.equal(memoryCheck(16 * GiB, 100 * 1024 * 1024, config().memory).status, "warn");
});

test("disks: an unwritable state folder fails; a download cache under min_free_bytes warns", () => {
  const [state, cache, models] = diskChecks(
    [
      { role: "state_dir", path: "/ro", exists: true, writable: false, freeBytes: 10 * GiB, error: null },
      { role: "download cache", path: "/hf", exists: true, writable: true, freeBytes: 0.5 * GiB, error: null },
      { role: "model_dir", path: "/models", exists: true, writable: false, freeBytes: 50 * GiB, error: null },
    ],
    GiB,
  );
  assert.equal(state!.status, "fail");
  assert.match(state!.fix ?? "", /state_dir/);
  assert.equal(cache!.status, "warn");
  assert.match(cache!.detail, /downloads are refused with 507/);
  assert.equal(models!.status, "ok", "model folders may be read-only");
});

test("models: a missing folder or file fails, an empty folder warns, nothing servable fails without the demo model", () => {
  const checks = modelChecks({
    dirs: [
      { path: "/gone", exists: false, ggufModels: 0 },
      { path: "/empty", exists: true, ggufModels: 0 },
      { path: "/full", exists: true, ggufModels: 3 },
    ],
    configured: [{ id: "x", path: "/x.gguf", exists: false }],
    discovery: [],
    problems: [{ id: "cut", problem: "truncated" }],
    servable: 0,
    demoModel: false,
  });
  assert.deepEqual(
    checks.map((c) => c.status),
    ["fail", "warn", "ok", "fail", "warn", "fail"],
  );
  assert.equal(modelChecks({ dirs: [], configured: [], discovery: [], problems: [], servable: 0, demoModel: true }).at(-1)!.status, "warn");
});

test("port: free, ours, someone else's, no permission, not our address", () => {
  assert.equal(portCheck("127.0.0.1", 1234, "free", null).status, "ok");
  assert.equal(portCheck("127.0.0.1", 1234, "lmx", null).status, "ok");
  assert.equal(portCheck("127.0.0.1", 1234, "in_use", "it answers HTTP 404 on /healthz").status, "fail");
  assert.match(portCheck("127.0.0.1", 80, "denied", null).fix ?? "", /below 1024/);
  assert.equal(portCheck("10.9.9.9", 1234, "bad_host", "EADDRNOTAVAIL").status, "fail");
});

const gpu = (over: Partial<GpuFacts>): GpuFacts => ({
  supported: [false],
  supportedError: null,
  nvidiaSmi: { found: false, driverVersion: null, cudaVersion: null, error: null },
  prebuiltCudaToolkit: null,
  localCudaBuild: false,
  ...over,
});

test("GPU: a driver older than the prebuilt CUDA toolkit warns with the build-from-source command", () => {
  const smi = { found: true, driverVersion: "535.104.05", cudaVersion: "12.2", error: null };
  const [mismatch] = gpuChecks(gpu({ supported: ["cuda", false], nvidiaSmi: smi, prebuiltCudaToolkit: "13.1" }), "auto");
  assert.equal(mismatch!.status, "warn");
  assert.match(mismatch!.detail, /supports CUDA 12\.2, older than the CUDA 13\.1 .*PTX/);
  assert.ok(mismatch!.fix?.includes(BUILD_CUDA_FROM_SOURCE));
  assert.equal(BUILD_CUDA_FROM_SOURCE, "npx --no node-llama-cpp source download --gpu cuda");
  // a local build for this driver, or a new enough driver, is fine
  assert.equal(
    gpuChecks(gpu({ supported: ["cuda", false], nvidiaSmi: smi, prebuiltCudaToolkit: "13.1", localCudaBuild: true }), "auto")[0]!.status,
    "ok",
  );
  assert.equal(
    gpuChecks(gpu({ supported: ["cuda", false], nvidiaSmi: { ...smi, cudaVersion: "13.2" }, prebuiltCudaToolkit: "13.1" }), "auto")[0]!.status,
    "ok",
  );
});

test("GPU: no GPU is fine; an NVIDIA card CUDA cannot use warns; asking for a missing backend fails", () => {
  assert.deepEqual(
    gpuChecks(gpu({}), "auto").map((c) => [c.status, c.detail]),
    [["ok", "no GPU found: models run on the CPU"]],
  );
  const unusable = gpuChecks(gpu({ nvidiaSmi: { found: true, driverVersion: "550.1", cudaVersion: "12.4", error: null } }), "auto");
  assert.equal(unusable[0]!.status, "warn");
  assert.match(unusable[0]!.fix ?? "", /source download --gpu cuda/);
  assert.equal(gpuChecks(gpu({}), "cuda")[0]!.status, "fail");
  assert.equal(gpuChecks(gpu({ supported: null, supportedError: "Cannot find module" }), "auto")[0]!.status, "fail");
  assert.equal(gpuChecks(gpu({ supported: ["metal", false] }), "auto")[0]!.detail, "metal is usable");
});

test("nvidia-smi's header and the toolkit marker nvcc leaves in a binary are read (even across read chunks)", async () => {
  assert.deepEqual(parseNvidiaSmi("| NVIDIA-SMI 535.104.05   Driver Version: 535.104.05   CUDA Version: 12.2     |"), {
    driverVersion: "535.104.05",
    cudaVersion: "12.2",
  });
  assert.equal(compareVersions("12.10", "12.9"), 1);
  assert.equal(compareVersions("12.2", "13.1"), -1);
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-cuda-"));
  try {
    const file = path.join(dir, "libggml-cuda.so");
    // the marker straddles the 1 MiB read boundary
    const marker = Buffer.from("\0Cuda compilation tools, release 13.1, V13.1.115\0");
    writeFileSync(file, Buffer.concat([Buffer.alloc(1024 * 1024 - 20), marker, Buffer.alloc(1000)]));
    assert.equal(await cudaToolkitOf(file), "13.1");
    writeFileSync(file, Buffer.alloc(4096));
    assert.equal(await cudaToolkitOf(file), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("access: beyond loopback without admin_key fails; without api_keys warns", () => {
  assert.equal(exposureCheck({ host: "127.0.0.1", admin_key: null, api_keys: [] }).status, "ok");
  const open = exposureCheck({ host: "0.0.0.0", admin_key: null, api_keys: [] });
  assert.equal(open.status, "fail");
  assert.match(open.fix ?? "", /admin_key \(or LMX_ADMIN_KEY\)/);
  assert.equal(exposureCheck({ host: "0.0.0.0", admin_key: "12345678", api_keys: [] }).status, "warn");
  assert.equal(exposureCheck({ host: "0.0.0.0", admin_key: "12345678", api_keys: ["abcdefgh"] }).status, "ok");
});

test("llama-server engine: missing → WARN with the build command (--cuda on an NVIDIA machine); CPU-only build on a GPU machine → WARN", () => {
  const missing = llamaServerCheck(null, "auto", false, [
    "/state/engines/llama-server/bin/llama-server",
    "/home/u/.cache/opta-lmx/llama-server/bin/llama-server",
  ]);
  assert.equal(missing.status, "warn");
  assert.match(
    missing.detail,
    /looked at \/state\/engines\/llama-server\/bin\/llama-server, \/home\/u\/\.cache\/opta-lmx\/llama-server\/bin\/llama-server/,
  );
  assert.equal(missing.fix?.startsWith("lmx engines build llama-server "), true);
  assert.match(llamaServerCheck(null, "auto", true, ["/d"]).fix ?? "", /build llama-server --cuda/);
  const cpuBuild = { path: "/x/llama-server", version: "llama-server 1 (commit abc1234)", devices: [] };
  assert.equal(llamaServerCheck(cpuBuild, "auto", false, ["/d"]).status, "ok");
  const onGpu = llamaServerCheck(cpuBuild, "auto", true, ["/d"]);
  assert.equal(onGpu.status, "warn");
  assert.match(onGpu.fix ?? "", /--cuda/);
  const cudaBuild = { ...cpuBuild, devices: ["CUDA0: NVIDIA H100 80GB HBM3"] };
  assert.match(llamaServerCheck(cudaBuild, "auto", true, ["/d"]).detail, /offloads to CUDA0/);
  assert.equal(llamaServerCheck(null, false, true, ["/d"]).status, "ok");
});
