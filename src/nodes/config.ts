/**
 * The `nodes` section of the configuration: other servers this gateway may route requests to — other LMX
 * servers, or any OpenAI-compatible endpoint (a vLLM cluster, a llama-server). Nothing of ours needs to run on
 * the other side beyond its public API (docs/scale-out.md).
 */
import { z } from "zod";

export const NODE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export const nodeConfigSchema = z
  .strictObject({
    /** How this node is named in /v1/models (`node`), metrics, logs and errors. */
    name: z.string().regex(NODE_NAME, "node names use lower-case letters, digits, _ and - (at most 64), starting with a letter or digit"),
    /** The server's address, http(s)://host:port with an optional path; a trailing /v1 is the same address. */
    url: z
      .url({ protocol: /^https?$/, error: "url is an http(s) address like http://10.0.0.2:1234" })
      .refine((u) => !URL.canParse(u) || (!new URL(u).search && !new URL(u).hash), "url takes no query or fragment")
      // the relay connects to the origin, which drops user:password: a key there would be silently unused
      .refine((u) => !URL.canParse(u) || (!new URL(u).username && !new URL(u).password), "put the node's key in api_key, not in the url"),
    /** Sent as `Authorization: Bearer <key>` on every request to the node (its api_keys). */
    api_key: z.string().min(1).nullable().default(null),
    /** LMX nodes only: read their load from /admin/status with this key (default: api_key; without it, no load). */
    admin_key: z.string().min(1).nullable().default(null),
    /** "lmx": another Opta LMX (reports what is loaded and its queue); "openai": any OpenAI-compatible server. */
    kind: z.enum(["lmx", "openai"]).default("lmx"),
    /** Seconds between health checks (GET /v1/models, and /admin/status on lmx nodes). */
    health_interval_sec: z.number().positive().max(3600).default(10),
    /** Seconds to connect, and for a whole health check, before the node counts as down. */
    timeout_sec: z.number().positive().max(300).default(5),
    /** Route this node's models here even when a local model has the same id (local models win by default). */
    prefer: z.boolean().default(false),
  })
  .transform((node) => ({ ...node, admin_key: node.admin_key ?? node.api_key }));

export const nodesConfigSchema = z
  .array(nodeConfigSchema)
  .default([])
  .superRefine((nodes, issue) => {
    const seen = new Set<string>();
    nodes.forEach((node, i) => {
      if (seen.has(node.name)) issue.addIssue({ code: "custom", message: `node name '${node.name}' is used twice`, path: [i, "name"] });
      seen.add(node.name);
    });
  });

export type NodeConfig = z.output<typeof nodeConfigSchema>;
