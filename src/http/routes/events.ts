/**
 * GET /admin/events: Server-Sent Events of model lifecycle moves, queue depth and download progress, in the
 * order they happen. The first event, `snapshot`, gives every known model's state, so a client that connects
 * late still knows where each model stands.
 */
import type { FastifyInstance } from "fastify";
import type { SequencedEvent } from "../../events/hub.js";
import type { GatewayContext } from "../context.js";
import { SSE_HEADERS } from "../../serving/sse.js";

const KEEPALIVE_MS = 15_000;

export function registerEventRoutes(admin: FastifyInstance, ctx: GatewayContext): void {
  admin.get("/admin/events", (request, reply) => {
    reply.hijack();
    const out = reply.raw;
    out.writeHead(200, SSE_HEADERS);
    const write = (name: string, data: unknown, id?: number) => {
      out.write(`${id === undefined ? "" : `id: ${id}\n`}event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    write("snapshot", {
      models: ctx.scheduler.lifecycle.all(),
      queue: ctx.scheduler.queueSnapshot(),
      at: new Date().toISOString(),
    });
    const unsubscribe = ctx.events.subscribe(({ seq, event }: SequencedEvent) => write(event.type, event, seq));
    const keepalive = setInterval(() => out.write(": keep-alive\n\n"), KEEPALIVE_MS);
    keepalive.unref();
    const stopOnClose = ctx.events.onClose(() => out.end());
    const end = () => {
      clearInterval(keepalive);
      unsubscribe();
      stopOnClose();
    };
    request.raw.on("close", end);
    out.on("close", end);
  });
}
