/**
 * The runner's HTTP client to its child server, over the child's Unix socket (llama-server) or a loopback port
 * (servers that cannot listen on a socket): node:http (no extra dependency in the runner), streamed answers
 * piped chunk by chunk. One connection per request, no keep-alive:
 * llama-server closes kept-alive connections idle for 5 s (`Keep-Alive: timeout=5`), and a pooled socket reused
 * as the server closes it fails the request ("socket hang up": 4 of 48 requests at concurrency 8 in a benchmark
 * whose rounds left the pool idle for seconds; none in any run since this change). A Unix-socket connect costs
 * microseconds.
 */
import http from "node:http";

/** Where a child server listens. */
export type ChildAddress = { socketPath: string } | { host: string; port: number };

export class Upstream {
  readonly agent: http.Agent;

  constructor(
    readonly address: ChildAddress,
    maxSockets: number,
  ) {
    this.agent = new http.Agent({ keepAlive: false, maxSockets });
  }

  /** The socket file, for removal when the child is gone; null for a port. */
  get socketPath(): string | null {
    return "socketPath" in this.address ? this.address.socketPath : null;
  }

  /** Starts a request; the caller reads (or pipes) the response. */
  request(method: string, path: string, body: string | null, signal?: AbortSignal): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          ...this.address,
          agent: this.agent,
          method,
          path,
          headers: body === null ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
          signal,
        },
        resolve,
      );
      req.on("error", reject);
      req.end(body ?? undefined);
    });
  }

  /** A whole exchange (control calls: health, props, metrics, tokenize, canary). */
  async call(method: string, path: string, body: unknown, signal: AbortSignal): Promise<UpstreamAnswer> {
    return readAnswer(await this.request(method, path, body === undefined ? null : JSON.stringify(body), signal));
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface UpstreamAnswer {
  status: number;
  text: string;
  /** The body parsed as JSON; null when it is not JSON (the Prometheus /metrics page is text). */
  json: unknown;
}

export async function readAnswer(res: http.IncomingMessage): Promise<UpstreamAnswer> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: callers read `text`
  }
  return { status: res.statusCode ?? 0, text, json };
}
