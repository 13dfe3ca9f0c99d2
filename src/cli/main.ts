#!/usr/bin/env node
/** `lmx`: the command line. `serve` runs the gateway in the foreground. */
import { Command, InvalidArgumentError } from "commander";
import { ConfigError, loadConfig } from "../config/load.js";
import { startServer } from "../server/server.js";

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError("not an integer");
  return n;
}

const program = new Command("lmx").description("Opta LMX: local OpenAI-compatible LLM server");

program
  .command("serve")
  .description("run the server in the foreground")
  .option("-c, --config <file>", "YAML config file (or LMX_CONFIG)")
  .option("--host <host>", "address to listen on")
  .option("--port <port>", "port to listen on", integer)
  .option("--model-dir <dir...>", "folders to scan for GGUF models")
  .option("--state-dir <dir>", "where the server keeps its own files")
  .option("--log-level <level>", "fatal|error|warn|info|debug|trace|silent")
  .action(async (options: { config?: string; host?: string; port?: number; modelDir?: string[]; stateDir?: string; logLevel?: string }) => {
    let config;
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
        process.exit(2);
      }
      throw error;
    }
    const server = await startServer(config);
    // one plain line whatever the log level: scripts and people need to know where it listens
    process.stderr.write(`opta-lmx listening on ${server.url}\n`);
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
  });

await program.parseAsync(process.argv);
