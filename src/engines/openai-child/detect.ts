/**
 * Which OpenAI-compatible Python servers this machine has, for `lmx engines`, `lmx doctor` and the gateway's
 * backends: a console script on PATH (mlx_lm.server, vllm-mlx, vllm) or an installed module run with
 * `python3 -m`, and whether the platform fits (MLX: Apple Silicon; vLLM: Linux with an NVIDIA driver).
 * Modules are found with importlib.util.find_spec, never imported: `import vllm` takes seconds.
 * None of these engines is verified on real hardware yet.
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import path from "node:path";

export type PythonEngineName = "mlx-lm" | "vllm-mlx" | "vllm";

export interface PlatformFacts {
  platform: NodeJS.Platform;
  arch: string;
  appleSilicon: boolean;
  /** An NVIDIA driver is loaded (Linux) or nvidia-smi is on PATH. */
  cuda: boolean;
}

export interface PythonEngine {
  name: PythonEngineName;
  /** Installed and the platform fits: the gateway adds it as a backend. */
  available: boolean;
  installed: boolean;
  /** The program to run and the arguments before the server's own (`python3 -m mlx_lm.server`). */
  binary: string | null;
  launcher: string[];
  version: string | null;
  /** Why it is (not) available, in one line. */
  note: string;
  /** Always false until someone runs it on the hardware it is for. */
  verified: false;
}

interface EngineSpec {
  name: PythonEngineName;
  script: string;
  module: string;
  /** pip's distribution name, for the version. */
  dist: string;
  launcher: string[];
  fits: (facts: PlatformFacts) => boolean;
  needs: string;
}

const ENGINES: readonly EngineSpec[] = [
  {
    name: "vllm-mlx",
    script: "vllm-mlx",
    module: "vllm_mlx",
    dist: "vllm-mlx",
    launcher: ["-m", "vllm_mlx.cli"],
    fits: (f) => f.appleSilicon,
    needs: "Apple Silicon (macOS arm64)",
  },
  {
    name: "mlx-lm",
    script: "mlx_lm.server",
    module: "mlx_lm",
    dist: "mlx-lm",
    launcher: ["-m", "mlx_lm.server"],
    fits: (f) => f.appleSilicon,
    needs: "Apple Silicon (macOS arm64)",
  },
  {
    name: "vllm",
    script: "vllm",
    module: "vllm",
    dist: "vllm",
    launcher: ["-m", "vllm.entrypoints.cli.main"],
    fits: (f) => f.platform === "linux" && f.cuda,
    needs: "Linux with an NVIDIA GPU (CUDA)",
  },
];

export function which(program: string, pathVariable = process.env["PATH"] ?? ""): string | null {
  for (const dir of pathVariable.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

export function platformFacts(): PlatformFacts {
  const cuda = existsSync("/proc/driver/nvidia/version") || which("nvidia-smi") !== null;
  return { platform: process.platform, arch: process.arch, appleSilicon: process.platform === "darwin" && process.arch === "arm64", cuda };
}

/** Module name → installed version ("?" when installed without metadata), or absent; one python3 run for all. */
function probeModules(python: string): Map<string, string> {
  const code = [
    "import importlib.util as u, importlib.metadata as m, json, sys",
    "out = {}",
    "for mod, dist in json.loads(sys.argv[1]):",
    "    if u.find_spec(mod) is None: continue",
    "    try: out[mod] = m.version(dist)",
    "    except Exception: out[mod] = '?'",
    "print(json.dumps(out))",
  ].join("\n");
  const args = JSON.stringify(ENGINES.map((e) => [e.module, e.dist]));
  const result = spawnSync(python, ["-c", code, args], { encoding: "utf8", timeout: 15_000 });
  if (result.status !== 0) return new Map();
  try {
    return new Map(Object.entries(JSON.parse(result.stdout.trim().split("\n").pop() ?? "{}") as Record<string, string>));
  } catch {
    return new Map();
  }
}

/**
 * `probe: false` skips the Python run where no engine's platform fits (the gateway on a CPU-only Linux box: no
 * cost at start); the answer then says only why none fits.
 */
export function detectPythonEngines(facts: PlatformFacts = platformFacts(), probe: "always" | "when-useful" = "always"): PythonEngine[] {
  const useful = ENGINES.some((e) => e.fits(facts));
  const python = which("python3");
  const modules = python && (probe === "always" || useful) ? probeModules(python) : new Map<string, string>();
  return ENGINES.map((spec) => {
    const script = which(spec.script);
    const version = modules.get(spec.module) ?? null;
    const installed = script !== null || version !== null;
    const binary = script ?? (version !== null ? python : null);
    const fits = spec.fits(facts);
    const note = !installed
      ? `not installed (${spec.script} not on PATH, no python3 module ${spec.module})`
      : fits
        ? `${script ? script : `${python} -m ${spec.launcher[1]}`}`
        : `installed, but needs ${spec.needs}`;
    return {
      name: spec.name,
      available: installed && fits,
      installed,
      binary,
      launcher: script ? [] : spec.launcher,
      version: version ?? (script ? "unknown" : null),
      note,
      verified: false,
    };
  });
}
