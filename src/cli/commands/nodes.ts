/** `lmx nodes`: the remote nodes this server routes to, their state, load and models (GET /admin/nodes). */
import type { Command } from "commander";
import { clientFor, printJson, run, withConnection } from "../command-kit.js";
import { EXIT } from "../exit.js";
import { formatDuration, renderTable, type Column, type Style } from "../format.js";
import type { ConnectionOptions } from "../target.js";

interface NodesOptions extends ConnectionOptions {
  json?: boolean;
}

/** One node as GET /admin/nodes answers it (snake_case). */
export interface NodeEntry {
  name: string;
  url: string;
  kind: string;
  up: boolean | null;
  checked_at: number | null;
  last_up_at: number | null;
  error: { kind: string; message: string; at: number } | null;
  in_flight: number;
  served: number;
  load_known: boolean;
  models: Array<{ id: string; status: string; owned_by: string | null; running: number | null; waiting: number | null }>;
}

function stateOf(node: NodeEntry, now: number): string {
  if (node.up === null) return "unchecked";
  if (node.up) return "up";
  const since = node.last_up_at === null ? "never up" : `last up ${formatDuration(Math.round((now - node.last_up_at) / 1000))} ago`;
  return `down (${node.error?.kind ?? "?"}; ${since})`;
}

export function renderNodes(nodes: readonly NodeEntry[], style: Style, now = Date.now()): string {
  if (nodes.length === 0) return "no remote nodes configured (the `nodes:` section of the config; docs/scale-out.md)\n";
  const columns: Array<Column<NodeEntry>> = [
    { header: "NODE", value: (n) => n.name },
    { header: "KIND", value: (n) => n.kind },
    { header: "URL", value: (n) => n.url },
    {
      header: "STATE",
      value: (n) => stateOf(n, now),
      color: (n, text) => (n.up ? style.green(text) : n.up === false ? style.red(text) : style.yellow(text)),
    },
    { header: "IN FLIGHT", value: (n) => String(n.in_flight), align: "right" },
    { header: "SERVED", value: (n) => String(n.served), align: "right" },
    { header: "MODELS", value: (n) => String(n.models.length), align: "right" },
  ];
  let text = renderTable(columns, nodes, style);
  for (const node of nodes) {
    if (node.error && node.up === false) text += `\n${style.yellow(node.name)}: ${node.error.message}`;
    for (const m of node.models) {
      const load = m.running === null ? "" : `  ${m.running} running · ${m.waiting ?? 0} waiting`;
      text += `\n  ${node.name}  ${m.id}  ${m.status}${load}`;
    }
  }
  return `${text}\n`;
}

export function registerNodesCommand(program: Command): void {
  withConnection(program.command("nodes").description("remote nodes this server routes to: state, load, models"))
    .option("--json", "print GET /admin/nodes as JSON")
    .action((options: NodesOptions) =>
      run(async (io) => {
        const client = clientFor(options);
        const { body } = await client.get<{ data: NodeEntry[] }>("/admin/nodes", "admin");
        if (options.json) printJson(io, body);
        else io.out(renderNodes(body.data, io.style));
        return EXIT.ok;
      }),
    );
}
