/**
 * The remote nodes of this gateway: health-checked on their own intervals, their models listed, and the order
 * in which they are tried for a model — where it is loaded first, then the least loaded (the node's reported
 * queue plus what we have in flight to it), then config order. Down nodes are skipped until a check finds them
 * back; their last known models are kept, so a request for one gets a clear node_unavailable, not a 404.
 */
import type { NodeConfig } from "./config.js";
import type { NodeProblem } from "./errors.js";
import { RemoteNode, type NodeModel, type NodeSnapshot } from "./node.js";

export interface NodeEvents {
  /** A health check or a request changed a node's state (up → down or back). */
  onChange?: (node: NodeSnapshot, previous: boolean | null) => void;
  /** Counted per node: health checks and proxied requests that could not reach it. */
  onFailure?: (node: string, kind: NodeProblem["kind"]) => void;
  /** Counted per node: proxied requests by how they ended. */
  onRequest?: (node: string, outcome: NodeRequestOutcome) => void;
}

/**
 * answered; failed after the answer had started; refused by the node before answering (its error is the
 * answer); unreachable (failed over to the next node, or node_unavailable); client_left.
 */
export type NodeRequestOutcome = "answered" | "failed" | "refused" | "unreachable" | "client_left";

const RANK: Record<NodeModel["status"], number> = { loaded: 0, loading: 1, available: 2, unavailable: 3 };

export class NodeRegistry {
  readonly nodes: readonly RemoteNode[];
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;

  constructor(
    configs: readonly NodeConfig[],
    private readonly events: NodeEvents = {},
  ) {
    this.nodes = configs.map((c) => new RemoteNode(c));
  }

  /** Checks every node now, then on its interval. Resolves once the first round ended (up or down). */
  async start(): Promise<void> {
    await Promise.all(
      this.nodes.map(async (node) => {
        await this.check(node);
        if (this.closed) return;
        const timer = setInterval(() => void this.check(node), node.config.health_interval_sec * 1000);
        timer.unref();
        this.timers.push(timer);
      }),
    );
  }

  /** Checks every node now (tests, `lmx nodes --check`). */
  async checkAll(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.check(n)));
  }

  private checking = new Map<RemoteNode, Promise<void>>();

  private check(node: RemoteNode): Promise<void> {
    let running = this.checking.get(node);
    if (!running) {
      const previous = node.up;
      running = node.check().finally(() => {
        this.checking.delete(node);
        if (node.up === false && node.error) this.events.onFailure?.(node.name, node.error.kind);
        if (node.up !== previous) this.events.onChange?.(node.snapshot(), previous);
      });
      this.checking.set(node, running);
    }
    return running;
  }

  get size(): number {
    return this.nodes.length;
  }

  /** Nodes that list the model, up or not (the last list a down node gave). */
  listing(modelId: string): RemoteNode[] {
    return this.nodes.filter((n) => n.model(modelId) !== undefined);
  }

  /** Up nodes that can serve the model, best first. */
  candidates(modelId: string): RemoteNode[] {
    const scored = this.nodes
      .map((node, order) => ({ node, order, model: node.model(modelId) }))
      .filter(
        (c): c is { node: RemoteNode; order: number; model: NodeModel } =>
          c.node.up === true && c.model !== undefined && c.model.status !== "unavailable",
      );
    const load = (c: { node: RemoteNode; model: NodeModel }) => (c.model.running ?? 0) + (c.model.waiting ?? 0) + c.node.route.active;
    scored.sort((a, b) => RANK[a.model.status] - RANK[b.model.status] || load(a) - load(b) || a.order - b.order);
    return scored.map((c) => c.node);
  }

  /** A request could not reach the node: down until its next check, and counted. */
  markDown(node: RemoteNode, problem: Omit<NodeProblem, "at">): void {
    const previous = node.up;
    node.markDown(problem);
    this.events.onFailure?.(node.name, problem.kind);
    if (previous !== false) this.events.onChange?.(node.snapshot(), previous);
  }

  countRequest(node: string, outcome: NodeRequestOutcome): void {
    this.events.onRequest?.(node, outcome);
  }

  snapshots(): NodeSnapshot[] {
    return this.nodes.map((n) => n.snapshot());
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    for (const n of this.nodes) n.close();
  }
}
