/**
 * count_tokens: tokens of a text with a named model's own tokenizer. The model is leased through the scheduler
 * like any request (loaded just in time if allowed, waiting its turn), and asked in llama-server's `/tokenize`
 * shape, which llama-server answers itself and our node-llama-cpp runner mirrors.
 */
import type { Dispatcher } from "undici";
import { fromOpenAiBody, LmxError } from "../../errors/codes.js";
import type { ModelDescriptor } from "../../inventory/types.js";
import type { ModelLease } from "../../scheduler/scheduler.js";
import type { BuiltinSkill } from "./types.js";

export interface CountTokensDeps {
  inventory: { resolve(id: string): Promise<ModelDescriptor> };
  scheduler: { acquire(descriptor: ModelDescriptor, signal?: AbortSignal): Promise<ModelLease> };
}

export function countTokensSkill(deps: CountTokensDeps): BuiltinSkill {
  return {
    name: "count_tokens",
    description: "Counts the tokens of a text with a model's own tokenizer (the model is loaded if needed).",
    parameters: {
      type: "object",
      properties: {
        model: { type: "string", minLength: 1 },
        text: { type: "string" },
        add_special: { type: "boolean", description: "count the BOS token the model adds to a prompt (default false)" },
      },
      required: ["model", "text"],
      additionalProperties: false,
    },
    outputSchema: { type: "object", properties: { model: { type: "string" }, tokens: { type: "integer" } }, required: ["model", "tokens"] },
    run: async (args, context) => {
      const descriptor = await deps.inventory.resolve(args["model"] as string).catch((error: unknown) => {
        if (error instanceof LmxError) throw new LmxError(error.code, error.message, { param: "arguments.model" });
        throw error;
      });
      if (descriptor.type === "embedding")
        throw new LmxError("invalid_value", `${descriptor.id} is an embedding model`, { param: "arguments.model" });
      const lease = await deps.scheduler.acquire(descriptor, context.signal);
      try {
        const direct = lease.runner.direct;
        const dispatcher: Dispatcher = direct?.dispatcher ?? lease.runner.dispatcher;
        const answer = await dispatcher.request({
          path: "/tokenize",
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ content: args["text"], add_special: args["add_special"] === true }),
          signal: context.signal,
          ...(direct ? { reset: true } : {}),
        });
        const text = await answer.body.text();
        let json: unknown = null;
        try {
          json = JSON.parse(text);
        } catch {
          // reported below
        }
        if (answer.statusCode !== 200)
          throw fromOpenAiBody(json, "skill_failed", `the runner answered /tokenize with HTTP ${answer.statusCode}: ${text.slice(0, 200)}`);
        const tokens = (json as { tokens?: unknown } | null)?.tokens;
        if (!Array.isArray(tokens)) throw new LmxError("skill_failed", `the runner's /tokenize answer has no tokens: ${text.slice(0, 200)}`);
        return { model: descriptor.id, tokens: tokens.length };
      } finally {
        lease.release();
      }
    },
  };
}
