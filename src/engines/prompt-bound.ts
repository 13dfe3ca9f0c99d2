/**
 * Refusing a prompt that cannot fit without tokenizing it. Tokenizing is synchronous in node-llama-cpp and
 * costs about a second per megabyte on a small CPU, during which every stream of the runner stalls; a prompt
 * whose byte length alone proves it is longer than the context is refused before that.
 *
 * The proof: llama.cpp's SPM and BPE tokenizers cover every byte of the text, and no token decodes to more bytes
 * than the longest token string in the vocabulary (an SPM "▁" is 3 bytes for a 1-byte space, a byte token
 * "<0x41>" 6 for 1, a byte-level BPE character 1–2 for 1), so a text of B bytes has at least B / longest tokens.
 */
import { LmxError } from "../errors/codes.js";

/** The longest token of a vocabulary in UTF-8 bytes, or null when the vocabulary is unknown (no refusal then). */
export function longestTokenBytes(vocabulary: readonly unknown[] | undefined): number | null {
  if (!vocabulary || vocabulary.length === 0) return null;
  let longest = 0;
  for (const token of vocabulary) {
    if (typeof token !== "string") return null;
    const bytes = Buffer.byteLength(token);
    if (bytes > longest) longest = bytes;
  }
  return longest > 0 ? longest : null;
}

/** Throws context_length_exceeded when `bytes` of prompt text hold at least `contextSize` tokens, whatever they are. */
export function refuseProvablyTooLong(bytes: number, longestToken: number | null, contextSize: number, param: string): void {
  if (longestToken === null) return;
  const atLeast = Math.floor(bytes / longestToken);
  // at least one token must be generated: a prompt of contextSize tokens does not fit
  if (atLeast < contextSize) return;
  throw new LmxError(
    "context_length_exceeded",
    `this model's context is ${contextSize} tokens per request, but the prompt has at least ${atLeast} tokens (${bytes} bytes, and no token of this model is longer than ${longestToken} bytes); shorten it or load the model with a larger context_size`,
    { param },
  );
}
