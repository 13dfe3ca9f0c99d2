/** `lmx serve`: the gateway in the foreground; flags override the config file and the environment. */
import { InvalidArgumentError, type Command } from "commander";
import { ConfigError, loadConfig, type ServerConfig } from "../config/load.js";
import { EXIT } from "./exit.js";

interface ServeOptions {
  config?: string;
  host?: string;
  port?: number;
  modelDir?: string[];
  stateDir?: string;
  logLevel?: string;
}

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError("not an integer");
  return n;
}

const LEVELS_THAT_LOG_LISTENING = new Set(["trace", "debug", "info"]);

export function registerServeCommand(program: Command): void {
  program
    .command("serve")
    .description("run the server in the foreground")
    .option("-c, --config <file>", "YAML config file (or LMX_CONFIG)")
    .option("--host <host>", "address to listen on")
    .option("--port <port>", "port to listen on", integer)
    .option("--model-dir <dir...>", "folders to scan for GGUF models")
    .option("--state-dir <dir>", "where the server keeps its own files")
    .option("--log-level <level>", "fatal|error|warn|info|debug|trace|silent")
    .action(serve);
}

async function serve(options: ServeOptions): Promise<void> {
  let config: ServerConfig;
  try {
    config = loadConfig({
      configPath: options.config,
      overrides: {
        host: options.host,
        port: options.port,
        model_dirs: options.modelDir,
        state_dir: options.stateDir,
        log_level: options.logLevel,
      },
    });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`lmx: ${error.message}\n`);
      process.exit(EXIT.usage);
    }
    throw error;
  }
  // imported here so client commands start without loading the server (Fastify, llama.cpp bindings)
  const { startServer } = await import("../gateway/start.js");
  const { StartupError } = await import("../gateway/startup.js");
  let server;
  try {
    server = await startServer(config);
  } catch (error) {
    // a port, host, log_file or state_dir to change: one line, the same exit as any other configuration error
    if (error instanceof StartupError) {
      process.stderr.write(`lmx: ${error.message}\n`);
      process.exit(EXIT.usage);
    }
    throw error;
  }
  // scripts and people need to know where it listens: at info and below the JSON log says so ("opta-lmx
  // listening" with its url); at quieter levels one plain line does, so it is said exactly once
  if (!LEVELS_THAT_LOG_LISTENING.has(config.log_level)) process.stderr.write(`opta-lmx listening on ${server.url}\n`);
  let signals = 0;
  const stop = (signal: string) => {
    signals++;
    if (signals > 1) {
      process.stderr.write(`lmx: second ${signal}, exiting now\n`);
      process.exit(1);
    }
    void server.close().then(() => process.exit(0));
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}
