/**
 * Counts a rendered prompt's tokens on a leased runner with llama-server's `/tokenize` (both engines answer it:
 * llama-server itself, and the node-llama-cpp runner with the same rules its `/completion` uses), so a count
 * equals the prompt_tokens a generation of the same prompt reports.
 */
import { fromOpenAiBody, LmxError } from "../errors/codes.js";
import type { RunnerHandle } from "../engines/backend.js";
import { RUNNER_REQUEST_ID_HEADER } from "../runner/protocol.js";
import { crashError } from "./relay.js";

const PATH = "/tokenize";

export async function countPromptTokens(runner: RunnerHandle, prompt: string, signal: AbortSignal): Promise<number> {
  // as /completion reads a prompt: BOS when the model wants it, special-token text as the special token
  let body: Record<string, unknown> = { content: prompt, add_special: true, parse_special: true };
  let path = PATH;
  const direct = runner.direct;
  if (direct) {
    const prepared = direct.prepare(PATH, body, signal);
    ({ path, body } = prepared);
    await prepared.check;
  }
  let status: number;
  let text: string;
  try {
    const answer = await (direct?.dispatcher ?? runner.dispatcher).request({
      path,
      method: "POST",
      headers: { "content-type": "application/json", [RUNNER_REQUEST_ID_HEADER]: "tokenize" },
      body: JSON.stringify(body),
      signal,
      ...(direct ? { reset: true } : {}),
    });
    status = answer.statusCode;
    text = await answer.body.text();
  } catch (error) {
    if (signal.aborted) throw error;
    throw await crashError(runner, error);
  }
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // an unreadable answer is reported below
  }
  if (status !== 200) {
    throw direct
      ? direct.mapError(status, json, text)
      : fromOpenAiBody(json, "internal_error", `runner answered HTTP ${status}: ${text.slice(0, 300)}`);
  }
  const tokens = (json as { tokens?: unknown } | null)?.tokens;
  if (!Array.isArray(tokens)) throw new LmxError("internal_error", `the runner's /tokenize answer has no tokens: ${text.slice(0, 200)}`);
  return tokens.length;
}
