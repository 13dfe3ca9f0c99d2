/**
 * Tools of a configured MCP server as skills (`server.tool`), over stdio (a fixed argv, never a shell) or
 * Streamable HTTP, with `@modelcontextprotocol/sdk`'s client. The server's tools are listed at connect and again
 * whenever it sends `notifications/tools/list_changed`; calls are forwarded with `tools/call` and their results
 * mapped to one JSON value.
 *
 * A server that dies or stops answering must not take anything else with it: its skills stay listed (last known
 * shape) and answer 502 `mcp_server_unavailable` — the calls in flight, and the first call after an exit the
 * gateway noticed on its own (so a crash is reported, with the server's last stderr lines, not hidden by a
 * silent restart) — and the call after that restarts or reconnects it. Restarts only ever happen on a call,
 * never on a timer, and failed restarts back off (1 s doubling to 30 s), so a server that crashes at start cannot
 * turn into a restart loop.
 */
import type { Readable } from "node:stream";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { ErrorCode, McpError, ToolListChangedNotificationSchema, type CallToolResult, type Tool } from "@modelcontextprotocol/sdk/types.js";
import { LmxError } from "../errors/codes.js";
import type { JsonSchema } from "../chat/types.js";
import type { McpServerConfig } from "./config.js";
import type { Skill, SkillCallContext, SkillSource } from "./types.js";

export interface McpSourceOptions {
  /** Timeout of the server's tools when its config names none. */
  defaultTimeoutMs: number;
  /** How long starting (spawn + initialize + tools/list) may take. */
  connectTimeoutMs?: number;
  /** Our name and version in MCP's `initialize`. */
  clientVersion?: string;
  /** Where connection changes are logged. */
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

/** What /v1/skills shows of the server: connected, or why not. */
export type McpConnectionState =
  | { state: "idle" }
  | { state: "connecting" }
  | { state: "connected"; since: number; tools: number; pid: number | null }
  | { state: "failed"; since: number; reason: string; retryAt: number };

const STDERR_TAIL_BYTES = 2048;
const MAX_BACKOFF_MS = 30_000;
/** Names the registry accepts; MCP allows more (slashes...), those are mapped to `_`. */
const UNSAFE_NAME_CHARS = /[^a-zA-Z0-9_.-]/g;

export class McpSkillSource implements SkillSource {
  readonly kind = "mcp" as const;
  readonly name: string;
  private client: Client | null = null;
  private transport: Transport | null = null;
  private connecting: Promise<Client> | null = null;
  /** The client of a start in progress: the gateway's stop must end its process too, not wait for its timeout. */
  private starting: Client | null = null;
  /** Bumped on every connect, so the close of an older connection is not taken for the current one's. */
  private generation = 0;
  private tools: Tool[] = [];
  private status: McpConnectionState = { state: "idle" };
  /** Consecutive start failures and crashes since the last successful call; restarts back off from the second. */
  private failures = 0;
  private lastFailureAt = 0;
  private stderrTail = "";
  /** An exit noticed between calls, not yet told to a caller. */
  private exitUnreported = false;
  private closed = false;
  private readonly listeners: Array<() => void> = [];

  constructor(
    private readonly config: McpServerConfig,
    private readonly options: McpSourceOptions,
  ) {
    this.name = config.name;
  }

  /**
   * The server's tools as skills. The first listing starts the server in the background (a slow or broken MCP
   * server must not hold the gateway's start); its tools appear through onChange once it answered. Down, the
   * source lists what it had last.
   */
  async list(): Promise<Skill[]> {
    if (this.status.state === "idle" && !this.closed) {
      // the failure is in health(); calls retry
      this.connect(null).catch(() => undefined);
    }
    return this.tools.map((tool) => this.skillOf(tool));
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  health(): { ok: boolean; detail?: string } {
    const s = this.status;
    switch (s.state) {
      case "idle":
        return { ok: true, detail: "not started yet (starts on first use)" };
      case "connecting":
        return { ok: true, detail: "connecting" };
      case "connected":
        return { ok: true, detail: `connected: ${s.tools} tools${s.pid === null ? "" : `, pid ${s.pid}`}` };
      case "failed":
        return { ok: false, detail: `failed: ${s.reason}` };
    }
  }

  /** The connection's state, for health views and tests. */
  connectionState(): McpConnectionState {
    return this.status;
  }

  /** The stdio server's process id while connected (tests kill it to prove the restart). */
  pid(): number | null {
    return this.transport instanceof StdioClientTransport ? this.transport.pid : null;
  }

  async close(): Promise<void> {
    this.closed = true;
    const clients = [this.client, this.starting];
    this.client = null;
    this.starting = null;
    this.generation++;
    await Promise.all(clients.map((client) => client?.close().catch(() => undefined)));
  }

  private skillOf(tool: Tool): Skill {
    const skillName = `${this.name}.${tool.name.replace(UNSAFE_NAME_CHARS, "_")}`.slice(0, 128);
    return {
      name: skillName,
      description: tool.description ?? tool.title ?? `${tool.name} (MCP server ${this.name})`,
      parameters: withoutMetaSchema(tool.inputSchema as JsonSchema),
      outputSchema: tool.outputSchema ? withoutMetaSchema(tool.outputSchema as JsonSchema) : undefined,
      timeoutMs: this.config.timeout_ms ?? this.options.defaultTimeoutMs,
      source: "mcp",
      sourceName: this.name,
      // the registry decides from skills.allow_in_loop
      allowInLoop: false,
      run: (args, context) => this.call(tool.name, args, context, this.config.timeout_ms ?? this.options.defaultTimeoutMs),
    };
  }

  private async call(tool: string, args: Record<string, unknown>, context: SkillCallContext, timeoutMs: number): Promise<unknown> {
    const client = this.client ?? (await this.reconnectForCall(context.signal));
    let result: CallToolResult;
    try {
      // the registry aborts at the skill's timeout; the SDK's own timeout is only a backstop behind it
      result = (await client.callTool({ name: tool, arguments: args }, undefined, {
        signal: context.signal,
        timeout: timeoutMs + 1_000,
      })) as CallToolResult;
    } catch (error) {
      if (context.signal.aborted) throw error;
      if (error instanceof McpError && error.code !== ErrorCode.ConnectionClosed && error.code !== ErrorCode.RequestTimeout) {
        // the server answered with a JSON-RPC error: the tool failed, the connection is fine
        throw new LmxError("skill_failed", `MCP server '${this.name}' refused ${tool}: ${error.message}`);
      }
      this.markDown(client, describeFailure(error));
      // this caller is told; the next one restarts
      this.exitUnreported = false;
      throw this.unavailable();
    }
    this.failures = 0;
    if (result.isError === true) {
      throw new LmxError("skill_failed", `${this.name}.${tool} failed: ${textOf(result) || "the MCP server reported an error"}`);
    }
    return valueOf(result);
  }

  /** A call found the server down: restart it now unless the last failures say wait. */
  private async reconnectForCall(signal: AbortSignal): Promise<Client> {
    if (this.closed) throw new LmxError("mcp_server_unavailable", `MCP server '${this.name}' is shut down`);
    if (this.exitUnreported) {
      this.exitUnreported = false;
      throw this.unavailable();
    }
    if (!this.mayStart()) throw this.unavailable();
    try {
      return await this.connect(signal);
    } catch (error) {
      if (signal.aborted) throw error;
      throw this.unavailable();
    }
  }

  private mayStart(): boolean {
    if (this.connecting) return true;
    if (this.failures <= 1) return true;
    return Date.now() >= this.lastFailureAt + backoffMs(this.failures);
  }

  private unavailable(): LmxError {
    const s = this.status;
    const reason = s.state === "failed" ? s.reason : "not connected";
    const retry =
      s.state === "failed" && s.retryAt > Date.now()
        ? `; restarted by a call after ${new Date(s.retryAt).toISOString()}`
        : "; restarted by the next call";
    return new LmxError("mcp_server_unavailable", `MCP server '${this.name}' is unavailable: ${reason}${retry}`, {
      details: { server: this.name },
    });
  }

  /** One connect at a time; every caller that finds the server down waits for the same attempt. */
  private connect(signal: AbortSignal | null): Promise<Client> {
    if (!this.connecting) {
      this.connecting = this.startConnection().finally(() => (this.connecting = null));
    }
    const attempt = this.connecting;
    if (!signal) return attempt;
    // a caller that gives up stops waiting; the attempt itself goes on for the others
    return new Promise<Client>((resolve, reject) => {
      const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      attempt.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
    });
  }

  private async startConnection(): Promise<Client> {
    const generation = ++this.generation;
    this.status = { state: "connecting" };
    this.stderrTail = "";
    const transport = this.newTransport();
    const client = new Client({ name: "opta-lmx", version: this.options.clientVersion ?? "0" }, { capabilities: {} });
    this.starting = client;
    client.onclose = () => {
      if (generation !== this.generation || this.closed || this.client !== client) return;
      this.markDown(client, transport instanceof StdioClientTransport ? "the server process exited" : "the connection closed");
      this.exitUnreported = true;
    };
    client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
      if (generation !== this.generation) return;
      try {
        await this.refreshTools(client);
      } catch (error) {
        this.options.log?.warn({ server: this.name, err: describeFailure(error) }, "MCP server announced a tool change but its tools/list failed");
      }
    });
    const timeout = this.options.connectTimeoutMs ?? 20_000;
    try {
      await client.connect(transport, { timeout });
      if (generation !== this.generation) throw new Error("closed while connecting");
      this.client = client;
      this.transport = transport;
      await this.refreshTools(client, timeout);
    } catch (error) {
      this.client = null;
      if (this.starting === client) this.starting = null;
      await client.close().catch(() => undefined);
      this.recordFailure(`could not start: ${describeFailure(error)}`);
      throw error;
    }
    this.starting = null;
    this.status = { state: "connected", since: Date.now(), tools: this.tools.length, pid: this.pid() };
    this.options.log?.info({ server: this.name, tools: this.tools.length, pid: this.pid() }, "MCP server connected");
    return client;
  }

  private newTransport(): Transport {
    if ("url" in this.config) {
      const headers = this.config.headers;
      return new StreamableHTTPClientTransport(new URL(this.config.url), headers ? { requestInit: { headers } } : {});
    }
    const [command, ...args] = this.config.command;
    const transport = new StdioClientTransport({
      command: command!,
      args,
      // the SDK adds its safe set (HOME, LOGNAME, PATH, SHELL, TERM, USER) and nothing else of ours: no API keys
      ...(this.config.env ? { env: this.config.env } : {}),
      ...(this.config.cwd ? { cwd: this.config.cwd } : {}),
      stderr: "pipe",
    });
    // read stderr always (a full pipe would block the server) and keep its tail for the failure reason
    (transport.stderr as Readable | null)?.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString("utf8")).slice(-STDERR_TAIL_BYTES);
    });
    return transport;
  }

  private async refreshTools(client: Client, timeout?: number): Promise<void> {
    const tools: Tool[] = [];
    let cursor: string | undefined;
    do {
      const page = await client.listTools(cursor ? { cursor } : undefined, timeout ? { timeout } : undefined);
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor && tools.length < 10_000);
    const changed = JSON.stringify(tools) !== JSON.stringify(this.tools);
    this.tools = tools;
    if (this.status.state === "connected") this.status = { ...this.status, tools: tools.length };
    if (changed) for (const listener of this.listeners) listener();
  }

  /** The connection is gone (process exited, HTTP failed): its skills answer 502 until a call restarts it. */
  private markDown(client: Client, reason: string): void {
    if (this.client !== client) return;
    this.client = null;
    this.transport = null;
    this.generation++;
    void client.close().catch(() => undefined);
    this.recordFailure(reason);
  }

  private recordFailure(reason: string): void {
    this.failures++;
    this.lastFailureAt = Date.now();
    const stderr = this.stderrTail.trim();
    const full = stderr ? `${reason} (stderr: ${stderr.slice(-500)})` : reason;
    this.status = {
      state: "failed",
      since: this.lastFailureAt,
      reason: full,
      retryAt: this.failures <= 1 ? this.lastFailureAt : this.lastFailureAt + backoffMs(this.failures),
    };
    this.options.log?.warn({ server: this.name, failures: this.failures }, `MCP server unavailable: ${full}`);
  }
}

/** The wait before restart attempt n (n ≥ 2): 1 s, 2 s, 4 s ... 30 s. */
function backoffMs(failures: number): number {
  return Math.min(1_000 * 2 ** Math.max(0, failures - 2), MAX_BACKOFF_MS);
}

function describeFailure(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

function textOf(result: CallToolResult): string {
  return result.content
    .filter((part): part is Extract<CallToolResult["content"][number], { type: "text" }> => part.type === "text")
    .map((part) => part.text)
    .join("\n");
}

/**
 * One JSON value per result: `structuredContent` when the tool gives one; else its text (the text parts joined);
 * a result with no text at all (images, resources) is its content array as MCP wrote it.
 */
export function valueOf(result: CallToolResult): unknown {
  if (result.structuredContent !== undefined) return result.structuredContent;
  if (result.content.some((part) => part.type === "text")) return textOf(result);
  return result.content;
}

/** `$schema` names a draft our validators may not load; the schema's meaning does not depend on it. */
function withoutMetaSchema(schema: JsonSchema): JsonSchema {
  if (typeof schema !== "object" || schema === null || !("$schema" in schema)) return schema;
  const { $schema: _ignored, ...rest } = schema;
  return rest;
}
