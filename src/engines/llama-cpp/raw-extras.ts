/**
 * What a raw `/completion` generation needs beyond the OpenAI routes: compiled grammars (compiling GBNF costs
 * more than a short generation, and the chat layer sends the same few grammars again and again) and
 * llama-server-shaped probability entries.
 */
import type { LlamaGrammar, Token } from "node-llama-cpp";
import { LmxError } from "../../errors/codes.js";
import { logarithm, type CompletionProbability } from "../../api/llama/completion.js";

const GRAMMAR_CACHE_ENTRIES = 64;

/** Compiled grammars by their text, least recently used dropped first. */
export class GrammarCache {
  private readonly entries = new Map<string, Promise<LlamaGrammar>>();

  constructor(private readonly compile: (grammar: string) => Promise<LlamaGrammar>) {}

  async get(text: string): Promise<LlamaGrammar> {
    let entry = this.entries.get(text);
    if (entry) {
      this.entries.delete(text);
    } else {
      entry = this.compile(text);
      // a grammar that does not parse is the client's error, and is not kept
      entry.catch(() => this.entries.delete(text));
    }
    this.entries.set(text, entry);
    while (this.entries.size > GRAMMAR_CACHE_ENTRIES) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
    try {
      return await entry;
    } catch (error) {
      throw new LmxError("invalid_value", `the grammar does not parse as GBNF: ${(error as Error)?.message ?? String(error)}`, {
        param: "grammar",
      });
    }
  }
}

/**
 * One generated token's entry: its probability and the top N of the distribution node-llama-cpp sampled from
 * (a Map sorted from the most to the least probable). Token texts are rendered with special tokens as text.
 *
 * Semantics differ from llama-server's (which takes the softmax of the raw logits, before any sampler):
 * node-llama-cpp 3.22 computes probabilities from the candidates after its sampler chain — repeat penalties, the
 * grammar (masked tokens get 0, the rest renormalized), and at temperature > 0 top-k/top-p/min-p and the
 * temperature. Under greedy sampling with no grammar and no penalties the two are the same distribution.
 */
export class TokenProbabilities {
  private readonly pieces = new Map<Token, { token: string; bytes: number[] }>();

  constructor(private readonly detokenize: (token: Token) => string) {}

  entry(token: Token, probabilities: ReadonlyMap<Token, number>, topN: number): CompletionProbability {
    const top: CompletionProbability["top_logprobs"] = [];
    for (const [id, probability] of probabilities) {
      if (top.length >= topN) break;
      top.push({ id, ...this.piece(id), logprob: logarithm(probability) });
    }
    return { id: token, ...this.piece(token), logprob: logarithm(probabilities.get(token) ?? 0), top_logprobs: top };
  }

  private piece(token: Token): { token: string; bytes: number[] } {
    let piece = this.pieces.get(token);
    if (!piece) {
      const text = this.detokenize(token);
      piece = { token: text, bytes: [...Buffer.from(text, "utf8")] };
      this.pieces.set(token, piece);
    }
    return piece;
  }
}
