/**
 * What `lmx doctor` needs to know about GPUs: what node-llama-cpp can use here, what nvidia-smi says about the
 * driver, and which CUDA toolkit the prebuilt CUDA binary was compiled with. The last two together predict the
 * common CUDA failure: a driver older than the toolkit rejects the binary's kernels ("the provided PTX was
 * compiled with an unsupported toolchain") on the first load.
 */
import { execFile } from "node:child_process";
import { createReadStream, existsSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

export interface NvidiaSmiFacts {
  found: boolean;
  driverVersion: string | null;
  /** The highest CUDA version the driver supports, as nvidia-smi's header prints it. */
  cudaVersion: string | null;
  /** nvidia-smi exists but failed (driver not loaded, no device). */
  error: string | null;
}

export interface GpuFacts {
  /** getLlamaGpuTypes("supported"); null when node-llama-cpp could not be asked. */
  supported: Array<string | false> | null;
  supportedError: string | null;
  nvidiaSmi: NvidiaSmiFacts;
  /** "13.1": the CUDA toolkit of node-llama-cpp's prebuilt CUDA binary, when one is installed. */
  prebuiltCudaToolkit: string | null;
  /** A CUDA build made on this machine (`node-llama-cpp source download --gpu cuda`) exists. */
  localCudaBuild: boolean;
}

export function parseNvidiaSmi(output: string): { driverVersion: string | null; cudaVersion: string | null } {
  return {
    driverVersion: /Driver Version:\s*([\d.]+)/.exec(output)?.[1] ?? null,
    cudaVersion: /CUDA Version:\s*([\d.]+)/.exec(output)?.[1] ?? null,
  };
}

export function nvidiaSmi(timeoutMs = 5_000): Promise<NvidiaSmiFacts> {
  return new Promise((resolve) => {
    execFile("nvidia-smi", [], { timeout: timeoutMs, encoding: "utf8" }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === "ENOENT") {
        resolve({ found: false, driverVersion: null, cudaVersion: null, error: null });
        return;
      }
      const parsed = parseNvidiaSmi(stdout);
      const message = error ? ((stderr || stdout || error.message).trim().split("\n")[0] ?? error.message) : null;
      resolve({ found: true, ...parsed, error: message });
    });
  });
}

/** -1, 0 or 1 for dotted versions ("12.4" < "13.1"). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

const TOOLKIT_MARKER = /Cuda compilation tools, release (\d+\.\d+)/;

/** nvcc leaves its version string in the binary; the first one is enough, so reading stops there. */
export async function cudaToolkitOf(file: string, maxBytes = 256 * 1024 * 1024): Promise<string | null> {
  return new Promise((resolve) => {
    let tail = "";
    let read = 0;
    const stream = createReadStream(file, { highWaterMark: 1024 * 1024 });
    stream.on("data", (chunk) => {
      read += chunk.length;
      const text = tail + (chunk as Buffer).toString("latin1");
      const match = TOOLKIT_MARKER.exec(text);
      if (match) {
        stream.destroy();
        resolve(match[1]!);
        return;
      }
      tail = text.slice(-64);
      if (read >= maxBytes) {
        stream.destroy();
        resolve(null);
      }
    });
    stream.on("error", () => resolve(null));
    stream.on("end", () => resolve(null));
  });
}

function nodeLlamaCppDir(): string | null {
  try {
    return path.resolve(path.dirname(createRequire(import.meta.url).resolve("node-llama-cpp")), "..");
  } catch {
    return null;
  }
}

/** The prebuilt CUDA library of @node-llama-cpp/<platform>-<arch>-cuda, wherever npm put the package. */
function prebuiltCudaLibrary(): string | null {
  const name = `@node-llama-cpp/${process.platform === "win32" ? "win" : process.platform}-${process.arch}-cuda`;
  const base = nodeLlamaCppDir();
  const requirers = [createRequire(import.meta.url), ...(base ? [createRequire(path.join(base, "package.json"))] : [])];
  for (const require of requirers) {
    let entry: string;
    try {
      entry = require.resolve(name);
    } catch {
      continue;
    }
    const bins = path.resolve(path.dirname(entry), "..", "bins");
    for (const dir of existsSync(bins) ? readdirSync(bins) : []) {
      for (const file of ["libggml-cuda.so", "ggml-cuda.dll"]) {
        const candidate = path.join(bins, dir, file);
        if (existsSync(candidate)) return candidate;
      }
    }
  }
  return null;
}

function hasLocalCudaBuild(): boolean {
  const base = nodeLlamaCppDir();
  const builds = base ? path.join(base, "llama", "localBuilds") : null;
  if (!builds || !existsSync(builds)) return false;
  return readdirSync(builds).some((name) => name.toLowerCase().includes("cuda"));
}

export async function gatherGpuFacts(): Promise<GpuFacts> {
  let supported: Array<string | false> | null = null;
  let supportedError: string | null = null;
  try {
    const { getLlamaGpuTypes } = await import("node-llama-cpp");
    supported = await getLlamaGpuTypes("supported");
  } catch (error) {
    supportedError = (error as Error).message;
  }
  const library = prebuiltCudaLibrary();
  const [smi, toolkit] = await Promise.all([nvidiaSmi(), library ? cudaToolkitOf(library) : Promise.resolve(null)]);
  return { supported, supportedError, nvidiaSmi: smi, prebuiltCudaToolkit: toolkit, localCudaBuild: hasLocalCudaBuild() };
}
