/**
 * /v1/agents/runs (docs/agents.md): create a run, read one or a list, follow its events (SSE: what happened so
 * far, then live, until its terminal event), cancel it. The runs' executor lives for the app: it is made here,
 * marks what a previous gateway left unfinished as interrupted, and ends its own runs when the server stops.
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { AgentRuns } from "../../agents/executor.js";
import { TERMINAL_EVENTS, type AgentEvent } from "../../agents/bus.js";
import { listQuerySchema, parseCreateRun, runObject } from "../../api/agents/schemas.js";
import { parseRequest } from "../../api/openai/schemas.js";
import { traceContextFor } from "../../metrics/trace.js";
import type { GatewayContext } from "../context.js";
import { chatOutcomeSink, priorityOf } from "./generation.js";
import { SSE_HEADERS } from "../../serving/sse.js";

const idParams = z.strictObject({ id: z.string().min(1).max(256) });
const KEEPALIVE_MS = 15_000;

export function registerAgentRoutes(app: FastifyInstance, ctx: GatewayContext): AgentRuns {
  const agents = new AgentRuns({
    serving: ctx,
    storage: ctx.storage,
    config: ctx.config.agents,
    metrics: ctx.metrics,
    outcomes: chatOutcomeSink(ctx),
    log: ctx.log.child({ component: "agents" }),
    maxLoopSteps: ctx.config.skills?.max_loop_steps,
  });
  // before the server waits for open connections: followers' streams end, runs end as interrupted
  app.addHook("preClose", async () => agents.shutdown());

  app.post("/v1/agents/runs", async (request, reply) => {
    const parsed = parseCreateRun(request.body);
    const priority = priorityOf(ctx, request);
    const trace = traceContextFor(request.headers);
    const run = await agents.create({ ...parsed, priority, trace });
    reply.code(201).header("location", `/v1/agents/runs/${run.id}`).header("traceparent", run.traceparent);
    return runObject(run, []);
  });

  app.get("/v1/agents/runs", async (request) => {
    const query = parseRequest(listQuerySchema, request.query ?? {});
    const runs = agents.store.list({ limit: query.limit, status: query.status, since: query.since });
    return { object: "list", data: runs.map((run) => runObject(run, null)), has_more: runs.length === query.limit };
  });

  app.get("/v1/agents/runs/:id", async (request) => {
    const { id } = idParams.parse(request.params);
    const { run, steps } = agents.get(id);
    return runObject(run, steps);
  });

  app.post("/v1/agents/runs/:id/cancel", async (request) => {
    const { id } = idParams.parse(request.params);
    agents.cancel(id);
    const { run, steps } = agents.get(id);
    return runObject(run, steps);
  });

  app.get("/v1/agents/runs/:id/events", (request, reply) => {
    const { id } = idParams.parse(request.params);
    agents.get(id); // 404 before the stream starts
    reply.hijack();
    const out = reply.raw;
    out.writeHead(200, SSE_HEADERS);
    let ended = false;
    const keepalive = setInterval(() => out.write(": keep-alive\n\n"), KEEPALIVE_MS);
    keepalive.unref();
    let unfollow = () => {};
    let stopOnClose = () => {};
    const end = () => {
      if (ended) return;
      ended = true;
      clearInterval(keepalive);
      unfollow();
      stopOnClose();
      out.end();
    };
    const write = (event: AgentEvent) => {
      if (ended) return;
      const id = event.seq === null ? "" : `id: ${event.seq}\n`;
      out.write(`${id}event: ${event.type}\ndata: ${JSON.stringify({ type: event.type, ...event.data })}\n\n`);
      // the terminal event is the last: the stream ends with it (a finished run's replay ends at once)
      if (TERMINAL_EVENTS.has(event.type)) setImmediate(end);
    };
    unfollow = agents.bus.follow(id, write);
    stopOnClose = agents.bus.onClose(end);
    request.raw.on("close", end);
    out.on("close", end);
  });

  return agents;
}
