/**
 * Requests for models that live on remote nodes (src/nodes/). A node is a whole server — its own scheduler,
 * admission queue, chat layer and templates — not a runner: a lease from our scheduler would queue the request
 * twice and budget memory we do not use, and our chat layer would need the node's template facts and a raw
 * /completion that an OpenAI endpoint does not have. So routing is one step before the local model is resolved,
 * and the request goes out whole, through the same relay as a local runner's (a node is a RelayTarget without a
 * process: streamed bytes pass through, errors keep their codes, a broken connection is node_unavailable).
 */
import { randomBytes } from "node:crypto";
import { LmxError } from "../errors/codes.js";
import type { RemoteNode } from "../nodes/node.js";
import type { NodeFailureKind } from "../nodes/errors.js";
import type { ServingContext } from "./context.js";
import type { GenerateInput, GenerateOutcome } from "./generate.js";
import { forwardToRunner } from "./relay.js";

/**
 * The nodes to try for this model, best first; null: serve it here. A local model that can be served keeps
 * precedence unless a node that has it is configured with `prefer`. A request that came from another node is
 * never routed again (one hop, no loops). Only nodes that list the model are considered; when all of them are
 * down the answer is node_unavailable, so a client knows where the model is and when to come back.
 */
export function routeToNodes(ctx: ServingContext, name: string, fromNode: boolean): RemoteNode[] | null {
  const registry = ctx.nodes;
  if (!registry || registry.size === 0 || fromNode) return null;
  const listing = registry.listing(name);
  if (listing.length === 0) return null;
  const local = ctx.inventory.peek(name);
  const localServable = local !== null && ctx.scheduler.unservableReason(local) === null;
  const candidates = registry.candidates(name);
  if (localServable) {
    const preferred = candidates.filter((n) => n.config.prefer);
    return preferred.length > 0 ? preferred : null;
  }
  if (candidates.length > 0) return candidates;
  // known here but not servable (another backend, quarantined): the local refusal says more than a down node
  if (local) return null;
  const reasons = listing.map((n) => `${n.name}: ${n.error?.message ?? (n.up === null ? "not checked yet" : "does not serve it now")}`);
  throw new LmxError("node_unavailable", `the model '${name}' is served by remote nodes that are unavailable now (${reasons.join("; ")})`, {
    param: "model",
    retryAfterSec: Math.min(...listing.map((n) => n.retryAfterSec)),
    details: { nodes: listing.map((n) => n.name) },
  });
}

/** Relays the request to the first node that answers; a node that cannot be reached is marked down and the next tried. */
export async function serveOnNodes(ctx: ServingContext, input: GenerateInput, nodes: RemoteNode[]): Promise<GenerateOutcome> {
  const { endpoint, body, signal, recorder } = input;
  const registry = ctx.nodes!;
  recorder.model = body.model;
  let last: LmxError | null = null;
  for (const node of nodes) {
    if (signal.aborted) return { kind: "client_left" };
    const completionId = endpoint.idPrefix + randomBytes(12).toString("hex");
    try {
      const outcome = await forwardToRunner(input.response, {
        runner: node.target,
        path: endpoint.path,
        body,
        requestId: completionId,
        stream: body.stream === true,
        signal,
        extraHeaders: { ...input.headers, "x-lmx-backend": `node:${node.name}`, "x-lmx-node": node.name },
        runnerHeaders: { ...input.runnerHeaders, ...node.requestHeaders() },
        recorder,
        ...(input.writeDeadline
          ? { writeDeadline: { ms: input.writeDeadline.ms, onTimeout: () => input.writeDeadline?.onTimeout(body.model) } }
          : {}),
      });
      if (outcome.kind === "client_closed" || signal.aborted) {
        registry.countRequest(node.name, "client_left");
        return { kind: "client_left" };
      }
      if (outcome.kind === "failed") {
        // the answer had started: nothing to fail over to, but the node is down until a check finds it back
        registry.countRequest(node.name, "failed");
        if (outcome.error.code === "node_unavailable") registry.markDown(node, problemOf(outcome.error));
        return { kind: "failed", completionId, error: outcome.error };
      }
      registry.countRequest(node.name, "answered");
      return { kind: "answered", completionId };
    } catch (error) {
      if (signal.aborted) return { kind: "client_left" };
      if (!(error instanceof LmxError)) throw error;
      registry.countRequest(node.name, error.code === "node_unavailable" ? "unreachable" : "refused");
      // nothing was answered yet: a node that could not take it (down, refused our key, lost the model) passes
      // the request to the next one; any other refusal (a client error, a full queue) is the answer
      if (error.code === "node_unavailable") registry.markDown(node, problemOf(error));
      else if (error.code !== "model_not_found") throw error;
      last = error;
    }
  }
  throw last ?? new LmxError("node_unavailable", `no node could take the request for '${body.model}'`, { retryAfterSec: 1 });
}

function problemOf(error: LmxError): { kind: NodeFailureKind; message: string } {
  const kind = error.details?.["kind"];
  return { kind: typeof kind === "string" ? (kind as NodeFailureKind) : "reset", message: error.message };
}
