/**
 * The strategies (docs/agents.md): how a run's steps follow each other. Each is a function of the run's spec
 * and a step function; the executor supplies steps that run through the server's own generation path.
 */
import { LmxError } from "../errors/codes.js";
import type { RunSpec, Strategy } from "../api/agents/schemas.js";
import type { JsonSchema } from "../chat/types.js";

export interface StepRequest {
  /** What the step is in its strategy: answer, reduce, route, judge, handoff. */
  kind: string;
  role: string;
  input: string;
  /** Constrains the answer (router's and judge's choices): a JSON Schema the grammar enforces. */
  schema?: { name: string; schema: JsonSchema };
}

export interface StrategyTools {
  step(request: StepRequest): Promise<string>;
  /** Runs `task` when fewer than max_parallelism of this run's steps are in flight. */
  limit<T>(task: () => Promise<T>): Promise<T>;
}

export interface StrategyResult {
  output: string;
  decision: Record<string, unknown> | null;
}

/** The roles each strategy uses besides `roles`, with their defaults. */
export function helperRoles(spec: RunSpec): Array<{ field: "reducer" | "classifier" | "judge"; role: string }> {
  switch (spec.strategy) {
    case "parallel_map":
      return [{ field: "reducer", role: spec.reducer ?? "summarizer" }];
    case "router":
      return [{ field: "classifier", role: spec.classifier ?? "classifier" }];
    case "vote":
      return spec.judge ? [{ field: "judge", role: spec.judge }] : [];
    case "handoff":
      return [];
  }
}

export const STRATEGY_RUNNERS: Record<Strategy, (spec: RunSpec, tools: StrategyTools) => Promise<StrategyResult>> = {
  async parallel_map(spec, { step, limit }) {
    const answers = await Promise.all(spec.roles.map((role) => limit(() => step({ kind: "answer", role, input: spec.prompt }))));
    const merged = answers.map((answer, i) => `## Answer ${i + 1} (${spec.roles[i]})\n${answer}`).join("\n\n");
    const input = `Task: ${spec.prompt}\n\nMerge these answers into one:\n\n${merged}`;
    return { output: await step({ kind: "reduce", role: spec.reducer ?? "summarizer", input }), decision: null };
  },

  async handoff(spec, { step }) {
    let previous: { role: string; output: string } | null = null;
    for (const role of spec.roles) {
      const input: string = previous ? `Task: ${spec.prompt}\n\nThe previous step (${previous.role}) produced:\n${previous.output}` : spec.prompt;
      previous = { role, output: await step({ kind: "handoff", role, input }) };
    }
    return { output: previous?.output ?? "", decision: null };
  },

  async router(spec, { step }) {
    // the grammar allows only the candidates' names, so the answer always parses to one of them
    const schema: JsonSchema = {
      type: "object",
      properties: { role: { type: "string", enum: [...new Set(spec.roles)] } },
      required: ["role"],
      additionalProperties: false,
    };
    const input = `Task: ${spec.prompt}\n\nWhich role should handle it? One of: ${spec.roles.join(", ")}.`;
    const answer = await step({ kind: "route", role: spec.classifier ?? "classifier", input, schema: { name: "route", schema } });
    const chosen = parseChoice(answer, "role");
    if (!spec.roles.includes(chosen)) throw new LmxError("internal_error", `the classifier chose '${chosen}', which is not one of the roles`);
    return { output: await step({ kind: "answer", role: chosen, input: spec.prompt }), decision: { role: chosen } };
  },

  async vote(spec, { step, limit }) {
    const voters = spec.roles.length > 1 ? spec.roles : Array.from({ length: spec.samples ?? 3 }, () => spec.roles[0]!);
    const answers = await Promise.all(voters.map((role) => limit(() => step({ kind: "answer", role, input: spec.prompt }))));
    if (spec.judge) {
      const numbers = answers.map((_, i) => String(i + 1));
      const schema: JsonSchema = {
        type: "object",
        properties: { choice: { type: "string", enum: numbers } },
        required: ["choice"],
        additionalProperties: false,
      };
      const listed = answers.map((answer, i) => `## Candidate ${i + 1}\n${answer}`).join("\n\n");
      const input = `Task: ${spec.prompt}\n\n${listed}\n\nWhich candidate is best? Answer with its number.`;
      const winner = Number(parseChoice(await step({ kind: "judge", role: spec.judge, input, schema: { name: "judgement", schema } }), "choice")) - 1;
      if (!(winner >= 0 && winner < answers.length)) throw new LmxError("internal_error", "the judge chose no candidate");
      return { output: answers[winner]!, decision: { method: "judge", winner, role: voters[winner] } };
    }
    const { winner, votes } = majority(answers);
    return { output: answers[winner]!, decision: { method: "majority", winner, role: voters[winner], votes } };
  },
};

/** The most frequent answer (compared trimmed, case- and whitespace-insensitively); a tie goes to the earliest. */
export function majority(answers: readonly string[]): { winner: number; votes: number } {
  const normal = answers.map((a) => a.trim().toLowerCase().replace(/\s+/g, " "));
  let winner = 0;
  let votes = 0;
  normal.forEach((text, i) => {
    const count = normal.filter((other) => other === text).length;
    if (count > votes) {
      winner = i;
      votes = count;
    }
  });
  return { winner, votes };
}

function parseChoice(answer: string, field: string): string {
  try {
    const value = (JSON.parse(answer) as Record<string, unknown>)[field];
    if (typeof value === "string") return value;
  } catch {
    // fall through: a grammar-constrained answer cut by max_tokens is the only way here
  }
  throw new LmxError("internal_error", `the constrained answer did not parse (${answer.slice(0, 80)}); was max_tokens too small?`);
}
