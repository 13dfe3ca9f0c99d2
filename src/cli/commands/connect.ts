/**
 * `lmx connect [URL]`: can this machine use that server, and if not, exactly why — nothing listening, not an
 * lmx server, still starting, a refused admin key, a refused API key.
 */
import type { Command } from "commander";
import type { ServerStatus, V1Model } from "../api-types.js";
import { fail, ok, renderChecks, warn, type Check } from "../checks.js";
import { printJson, run, withConnection, type Io } from "../command-kit.js";
import { CliError, EXIT } from "../exit.js";
import { LmxClient } from "../http.js";
import { resolveTarget, type ConnectionOptions } from "../target.js";

interface ConnectOptions extends ConnectionOptions {
  json?: boolean;
}

async function readJson(res: { text(): Promise<string> }): Promise<unknown> {
  try {
    return JSON.parse(await res.text());
  } catch {
    return null;
  }
}

/** Runs the checks in order; a check that makes the later ones meaningless stops the list. */
export async function connectChecks(client: LmxClient): Promise<{ checks: Check[]; exitCode: number }> {
  const target = client.target;
  const checks: Check[] = [];
  const codes: number[] = [];
  const failed = (name: string, error: unknown): Check => {
    if (!(error instanceof CliError)) throw error;
    codes.push(error.exitCode);
    return fail(name, error.message, error.fix);
  };
  let health: Awaited<ReturnType<LmxClient["raw"]>>;
  try {
    health = await client.raw("GET", "/healthz", "open", { timeoutMs: 5_000 });
  } catch (error) {
    checks.push(failed("reachable", error));
    return { checks, exitCode: error instanceof CliError ? error.exitCode : EXIT.unreachable };
  }
  const healthBody = (await readJson(health)) as { status?: string } | null;
  if (health.status !== 200 || healthBody?.status !== "ok") {
    checks.push(
      fail(
        "reachable",
        `${target.url}/healthz answered HTTP ${health.status}, not an Opta LMX health answer`,
        "something else listens there: check the port in --url (or LMX_URL)",
      ),
    );
    return { checks, exitCode: EXIT.failed };
  }
  checks.push(ok("reachable", `${target.url} answers /healthz (address from ${target.from.url})`));

  try {
    const ready = await client.raw("GET", "/readyz", "open", { timeoutMs: 5_000 });
    const body = (await readJson(ready)) as { status?: string; models_loaded?: number } | null;
    if (ready.status === 200) checks.push(ok("ready", `ready, ${body?.models_loaded ?? 0} model(s) loaded`));
    else if (body?.status === "shutting_down") checks.push(warn("ready", "the server is shutting down", "wait for it to come back (or restart it)"));
    else
      checks.push(
        warn(
          "ready",
          `not ready yet (${body?.status ?? `HTTP ${ready.status}`}): start-up loads are running`,
          "wait a moment; `lmx status` shows progress",
        ),
      );
  } catch (error) {
    checks.push(failed("ready", error));
  }

  try {
    const { body } = await client.get<ServerStatus>("/admin/status", "admin", { timeoutMs: 10_000 });
    const how = target.adminKey ? `admin key accepted (from ${target.from.adminKey})` : "no admin key needed: the server has no admin_key";
    checks.push(ok("admin", `${how}; server v${body.version ?? "?"}`));
  } catch (error) {
    checks.push(failed("admin", error));
  }

  try {
    const { body } = await client.get<{ data: V1Model[] }>("/v1/models", "v1", { timeoutMs: 10_000 });
    const loaded = body.data.filter((m) => m.status === "loaded").length;
    const how = target.apiKey ? `API key accepted (from ${target.from.apiKey})` : "no API key needed: the server has no api_keys";
    checks.push(ok("api", `${how}; ${body.data.length} model(s), ${loaded} loaded`));
  } catch (error) {
    checks.push(failed("api", error));
  }

  const exitCode = codes.includes(EXIT.unreachable)
    ? EXIT.unreachable
    : codes.includes(EXIT.auth)
      ? EXIT.auth
      : codes.length > 0
        ? EXIT.failed
        : EXIT.ok;
  return { checks, exitCode };
}

async function connect(url: string | undefined, options: ConnectOptions, io: Io): Promise<number> {
  const target = resolveTarget({ ...options, ...(url ? { url } : {}) });
  const client = new LmxClient(target);
  const { checks, exitCode } = await connectChecks(client);
  if (options.json) printJson(io, { url: target.url, url_from: target.from.url, checks, exit_code: exitCode });
  else io.out(`${io.style.bold(target.url)}\n${renderChecks(checks, io.style)}`);
  return exitCode;
}

export function registerConnectCommand(program: Command): void {
  withConnection(
    program
      .command("connect")
      .argument("[url]", "server URL (same as --url)")
      .description("check that a server is reachable and that the keys work; says exactly what is wrong"),
  )
    .option("--json", "print the checks as JSON")
    .action((url: string | undefined, options: ConnectOptions) => run((io) => connect(url, options, io)));
}
