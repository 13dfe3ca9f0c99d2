/**
 * The llama.cpp engine as it runs inside a runner process: one model, one context with `parallel` sequences
 * decoded together, prefix-aware slot placement, and a lean token loop over `sequence.evaluate`
 * (the high-level LlamaChat/LlamaCompletion add per-token work we do not need).
 */
import {
  getLlama,
  getModuleVersion,
  GgufInsights,
  readGgufFileInfo,
  LlamaGrammarEvaluationState,
  LlamaLogLevel,
  LlamaText,
  NoBinaryFoundError,
  resolveChatWrapper,
  type ChatHistoryItem,
  type ChatWrapper,
  type Llama,
  type LlamaContext,
  type LlamaEmbeddingContext,
  type LlamaGrammar,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import { LmxError } from "../../errors/codes.js";
import type { ChatCompletionRequest, CompletionRequest, EmbeddingRequest } from "../../api/openai/schemas.js";
import { messageText, stopList } from "../../api/openai/schemas.js";
import type { CompletionProbability, RawCompletionBody, StopType } from "../../api/llama/completion.js";
import type { TemplateInfo } from "../../chat/types.js";
import type { MemoryEstimate, RunnerInfo, RunnerInitMessage, RunnerStats } from "../../runner/protocol.js";
import { DEFAULT_MAX_CONTEXT, defaultContextSize } from "../context-size.js";
import { BatchGate } from "./batch-gate.js";
import { SlotPool, type Slot, type SlotLease } from "./slots.js";
import { IncrementalDetokenizer, StopStringMatcher } from "./text-stream.js";
import { longestTokenBytes, refuseProvablyTooLong } from "../prompt-bound.js";
import { OFF_THREAD_MIN_BYTES, TokenizerThread } from "./tokenizer-thread.js";
import { GrammarCache, TokenProbabilities } from "./raw-extras.js";

export const BACKEND_NAME = "llama.cpp";
/** llama.cpp's own sampling defaults (llama-server), used where a request leaves a knob unset. */
const SAMPLING_DEFAULTS = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05 } as const;
const PENALTY_LAST_N = 64;
const CANARY_TOKENS = 4;
/**
 * How long a request waits in the runner for a sequence. The gateway admits at most `parallel` requests, but
 * frees a place as soon as a client leaves, while the runner frees the sequence only when the aborted
 * generation unwinds (a decode may be in flight): a request arriving in that gap waits here. Past this wait,
 * `runner_busy` with a Retry-After.
 */
const SLOT_WAIT_MS = 10_000;

export type FinishReason = "stop" | "length";

export interface GenerationResult {
  text: string;
  finishReason: FinishReason;
  /** llama-server's finer reason: end-of-generation token, stop string, or the token limit. */
  stopType: StopType;
  /** The stop string that ended the generation ("" otherwise). */
  stoppingWord: string;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  promptMs: number;
  generationMs: number;
}

/** A request that passed the context check and holds a slot: safe to start answering 200. */
export interface PreparedGeneration {
  readonly promptTokens: Token[];
  /** The sequence this request holds until `generate` (or `release`) gives it back. */
  readonly lease: SlotLease;
  readonly maxTokens: number;
  readonly stopStrings: string[];
  readonly stopTokens: ReadonlySet<Token>;
  readonly sampling: SamplingSettings;
  /** Generate past end-of-generation tokens (which are not shown) until max_tokens or a stop string. */
  readonly ignoreEos: boolean;
  /** A raw `/completion` generation's extras; null for the OpenAI routes (which pay nothing for them). */
  readonly raw: RawExtras | null;
}

interface RawExtras {
  /** Compiled GBNF; a fresh evaluation state is made per generation. */
  grammar: LlamaGrammar | null;
  /** Top-N log-probabilities per generated token (0 = none). */
  nProbs: number;
}

/** The sampling fields the OpenAI routes and `/completion` share (same names in both dialects). */
interface SamplingInput {
  temperature?: number | null | undefined;
  top_k?: number | null | undefined;
  top_p?: number | null | undefined;
  min_p?: number | null | undefined;
  seed?: number | null | undefined;
  presence_penalty?: number | null | undefined;
  frequency_penalty?: number | null | undefined;
  ignore_eos?: boolean | null | undefined;
}

interface SamplingSettings {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  seed: number;
  presencePenalty: number;
  frequencyPenalty: number;
}

export interface EmbeddingResult {
  vectors: number[][];
  promptTokens: number;
}

function mapLogLevel(level: string): LlamaLogLevel {
  switch (level) {
    case "trace":
    case "debug":
      return LlamaLogLevel.debug;
    case "info":
      return LlamaLogLevel.warn;
    default:
      return LlamaLogLevel.error;
  }
}

export class LlamaCppEngine {
  private readonly stats: RunnerStats;
  private readonly slots: SlotPool;
  private readonly embeddingPool: LlamaEmbeddingContext[];
  private readonly idleEmbeddingContexts: LlamaEmbeddingContext[];
  private readonly embeddingWaiters: Array<(ctx: LlamaEmbeddingContext) => void> = [];

  private constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext | null,
    embeddingContexts: LlamaEmbeddingContext[],
    private readonly chatWrapper: ChatWrapper | null,
    readonly info: RunnerInfo,
    stats: RunnerStats,
    private readonly batchGate: BatchGate,
    /** Only from test fault injection (src/runners/fault-injection.ts); 0 otherwise. */
    private readonly testTokenDelayMs: number,
  ) {
    this.stats = stats;
    const slots: Slot[] = [];
    if (context) {
      for (let i = 0; i < info.parallel; i++) slots.push({ index: i, sequence: context.getSequence(), owner: null, lastUsed: 0 });
    }
    this.slots = new SlotPool(slots, SLOT_WAIT_MS);
    this.embeddingPool = embeddingContexts;
    this.idleEmbeddingContexts = [...embeddingContexts];
  }

  /**
   * Loads the model, after asking `admit` whether its estimated memory fits: nothing is read into memory
   * before the gateway said yes, so a load that cannot fit never starts.
   */
  static async load(
    init: RunnerInitMessage,
    log: (line: string) => void,
    admit: (estimate: MemoryEstimate) => Promise<void>,
    testTokenDelayMs = 0,
  ): Promise<LlamaCppEngine> {
    const started = performance.now();
    const { settings } = init;
    const logging = { logLevel: mapLogLevel(init.logLevel), logger: (_level: LlamaLogLevel, message: string) => log(message) };
    let llama: Llama;
    try {
      llama = await getLlama({
        gpu: settings.gpu === "cpu" ? false : settings.gpu,
        build: "never",
        // node-llama-cpp's default is max(cores, 4): catastrophically slow on small machines. Always explicit.
        maxThreads: settings.threads,
        ...logging,
      });
    } catch (error) {
      // A source build (the fix for a GPU driver too old for the prebuilt CUDA binary) lives in a folder keyed by
      // its own cmake options, which getLlama({build: "never"}) does not look for; "lastBuild" loads it.
      if (!(error instanceof NoBinaryFoundError) || settings.gpu === "cpu") throw error;
      log("no prebuilt binary matches; using the last local source build of llama.cpp");
      llama = await getLlama("lastBuild", { maxThreads: settings.threads, ...logging });
    }
    const { estimate } = await estimateMemory(llama, init);
    await admit(estimate);
    let model: LlamaModel;
    try {
      model = await llama.loadModel({
        modelPath: init.modelPath,
        gpuLayers: settings.gpuLayers,
      });
    } catch (error) {
      throw classifyLoadError(error, init.modelPath);
    }
    const trainContextSize = model.trainContextSize;
    const contextSize = defaultContextSize(settings.contextSize, trainContextSize);
    const stats: RunnerStats = {
      requestsServed: 0,
      requestsActive: 0,
      decodeCalls: 0,
      promptTokensEvaluated: 0,
      promptTokensCached: 0,
      generatedTokens: 0,
      slotsBusy: 0,
      slotsTotal: settings.parallel,
      requestsWaiting: 0,
      rssBytes: 0,
    };
    let context: LlamaContext | null = null;
    const batchGate = new BatchGate();
    const embeddingContexts: LlamaEmbeddingContext[] = [];
    let chatWrapper: ChatWrapper | null = null;
    if (init.modelType === "embedding") {
      for (let i = 0; i < settings.parallel; i++) {
        embeddingContexts.push(
          await model.createEmbeddingContext({
            contextSize,
            batchSize: Math.min(settings.batchSize, contextSize),
            threads: settings.threads,
          }),
        );
      }
    } else {
      context = await model.createContext({
        contextSize,
        sequences: settings.parallel,
        batching: { itemPrioritizationStrategy: batchGate.strategy },
        batchSize: settings.batchSize,
        threads: settings.threads,
        flashAttention: settings.flashAttention,
        // never let node-llama-cpp shrink the context behind our back: a wrong size must fail loudly
        failedCreationRemedy: false,
      });
      countDecodeCalls(context, stats);
      chatWrapper = resolveChatWrapper(model);
    }
    const modelMemory = model.memoryUsage;
    const contextMemory = context ? context.memoryUsage : sumMemory(embeddingContexts.map((c) => contextMemoryOf(c)));
    const info: RunnerInfo = {
      pid: process.pid,
      backend: init.backend,
      backendVersion: `node-llama-cpp ${await getModuleVersion()}`,
      gpu: llama.gpu,
      contextSize: context ? context.contextSize / settings.parallel : contextSize,
      trainContextSize,
      parallel: settings.parallel,
      threads: settings.threads,
      batchSize: context ? context.batchSize : settings.batchSize,
      gpuLayers: model.gpuLayers,
      chatWrapper: chatWrapper ? chatWrapper.wrapperName : null,
      template: templateInfo(model),
      embeddingSize: init.modelType === "embedding" ? model.embeddingVectorSize : null,
      memory: {
        modelRam: numberOr(modelMemory.ram, model.size),
        modelVram: numberOr(modelMemory.vram, 0),
        contextRam: numberOr(contextMemory.ram, 0),
        contextVram: numberOr(contextMemory.vram, 0),
      },
      estimate,
      canary: { tokens: 0, ms: 0, tokensPerSec: 0 },
      loadMs: 0,
    };
    const engine = new LlamaCppEngine(llama, model, context, embeddingContexts, chatWrapper, info, stats, batchGate, testTokenDelayMs);
    if (context) engine.tokenizerThread = new TokenizerThread(init.modelPath, llama.gpu, log);
    const first = engine.slots.slots[0];
    if (first) info.contextSize = first.sequence.contextSize;
    info.canary = await engine.canary();
    info.loadMs = Math.round(performance.now() - started);
    return engine;
  }

  /**
   * A short greedy generation (or one embedding) before the runner is declared ready: a model that loads but
   * cannot produce finite output fails its load here, not on a user's request. Corrupted weights load fine
   * (llama.cpp only checks them with checkTensors) and then sample garbage with NaN confidence.
   */
  private async canary(): Promise<RunnerInfo["canary"]> {
    const started = performance.now();
    const fail = (why: string) => new LmxError("model_probe_failed", `the model loaded but failed its canary generation: ${why}`);
    try {
      const embeddingContext = this.embeddingPool[0];
      if (embeddingContext) {
        const { vector } = await embeddingContext.getEmbeddingFor("Hello");
        if (vector.length === 0 || !vector.every(Number.isFinite)) throw fail("the embedding has non-finite values");
        const ms = performance.now() - started;
        return { tokens: 1, ms: Math.round(ms), tokensPerSec: Math.round(1000 / Math.max(ms, 0.001)) };
      }
      const slot = this.slots.slots[0];
      if (!slot) throw fail("no sequence to run it on");
      let tokens = 0;
      let firstAt = 0;
      for await (const out of slot.sequence.evaluateWithMetadata(this.model.tokenize("Hello", false), { confidence: true }, { temperature: 0 })) {
        if (firstAt === 0) firstAt = performance.now();
        if (!Number.isFinite(out.confidence)) throw fail("it produces non-finite logits (NaN or infinite weights?)");
        if (++tokens >= CANARY_TOKENS) break;
      }
      await slot.sequence.clearHistory();
      const ms = performance.now() - started;
      const decodeMs = firstAt ? performance.now() - firstAt : ms;
      return { tokens, ms: Math.round(ms), tokensPerSec: tokens > 1 ? Math.round(((tokens - 1) * 1000) / Math.max(decodeMs, 0.001)) : 0 };
    } catch (error) {
      if (error instanceof LmxError) throw error;
      throw fail((error as Error)?.message ?? String(error));
    }
  }

  getStats(): RunnerStats {
    return { ...this.stats, slotsBusy: this.slots.busy, requestsWaiting: this.slots.waiting, rssBytes: process.memoryUsage.rss() };
  }

  private longestToken: number | null | undefined;
  /** Tokenizes large prompts off this event loop, which decodes every stream of the runner (tokenizer-thread.ts). */
  private tokenizerThread: TokenizerThread | null = null;

  /** Inline for small texts; a large one in the tokenizer thread, or inline where that thread cannot run. */
  private async tokenizeLarge(
    bytes: number,
    offThread: (thread: TokenizerThread) => Promise<Token[] | null>,
    inline: () => Token[],
  ): Promise<Token[]> {
    if (bytes < OFF_THREAD_MIN_BYTES || !this.tokenizerThread) return inline();
    return (await offThread(this.tokenizerThread)) ?? inline();
  }

  /** From the GGUF's vocabulary, which node-llama-cpp has read with the file's metadata; computed once. */
  private longestTokenBytes(): number | null {
    if (this.longestToken === undefined) {
      const metadata = this.model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: readonly unknown[] } } };
      this.longestToken = longestTokenBytes(metadata.tokenizer?.ggml?.tokens);
    }
    return this.longestToken;
  }

  get isEmbeddingModel(): boolean {
    return this.context === null;
  }

  /** `signal`: the client left; a request still waiting for a sequence stops waiting (rejects with its reason). */
  async prepareChat(request: ChatCompletionRequest, signal: AbortSignal): Promise<PreparedGeneration> {
    if (!this.chatWrapper) throw notForGeneration();
    // the rendered prompt holds every message text, so their bytes together bound its tokens from below
    const bytes = request.messages.reduce((sum, message) => sum + Buffer.byteLength(messageText(message.content)), 0);
    refuseProvablyTooLong(bytes, this.longestTokenBytes(), this.info.contextSize, "messages");
    const history: ChatHistoryItem[] = [];
    for (const message of request.messages) {
      const text = messageText(message.content);
      if (message.role === "system" || message.role === "developer") history.push({ type: "system", text });
      else if (message.role === "user") history.push({ type: "user", text });
      else history.push({ type: "model", response: [text] });
    }
    // the wrapper renders up to the start of the model's answer when the history ends with an empty model turn
    history.push({ type: "model", response: [] });
    const state = this.chatWrapper.generateContextState({ chatHistory: history });
    const tokens = await this.tokenizeLarge(
      bytes,
      (thread) => thread.tokenizeLlamaText(state.contextText),
      () => state.contextText.tokenize(this.model.tokenizer),
    );
    const stopTokens = new Set<Token>();
    const stopStrings = stopList(request.stop);
    for (const trigger of state.stopGenerationTriggers) {
      const triggerTokens = LlamaText(trigger).tokenize(this.model.tokenizer);
      if (triggerTokens.length === 1 && triggerTokens[0] !== undefined) stopTokens.add(triggerTokens[0]);
      const triggerText = LlamaText(trigger).toString();
      if (triggerText.trim() !== "" && !stopStrings.includes(triggerText)) stopStrings.push(triggerText);
    }
    return this.prepare(tokens, request.max_completion_tokens ?? request.max_tokens ?? null, stopStrings, stopTokens, request, signal);
  }

  async prepareCompletion(request: CompletionRequest, signal: AbortSignal): Promise<PreparedGeneration> {
    if (!this.context) throw notForGeneration();
    const prompt = typeof request.prompt === "string" ? request.prompt : (request.prompt[0] ?? "");
    const bytes = Buffer.byteLength(prompt);
    refuseProvablyTooLong(bytes, this.longestTokenBytes(), this.info.contextSize, "prompt");
    const tokens = await this.tokenizeLarge(
      bytes,
      (thread) => thread.tokenizeText(prompt),
      () => this.model.tokenize(prompt, false),
    );
    if (this.model.tokens.shouldPrependBosToken && this.model.tokens.bos !== null) tokens.unshift(this.model.tokens.bos);
    if (tokens.length === 0) throw new LmxError("invalid_value", "prompt must not be empty", { param: "prompt" });
    return this.prepare(tokens, request.max_tokens ?? null, stopList(request.stop), new Set(), request, signal);
  }

  private readonly grammars = new GrammarCache((grammar) => this.llama.createGrammar({ grammar }));
  // a token's piece as llama-server shows it: detokenized after BOS, so a leading space is kept (alone, the first
  // piece of a text loses it)
  private readonly tokenProbabilities = new TokenProbabilities((token) => {
    const bos = this.model.tokens.bos;
    return this.model.detokenize([token], true, bos !== null ? [bos] : undefined);
  });

  /**
   * llama-server's `/completion`: the prompt is tokenized with special-token text parsed as special tokens, BOS
   * prepended when the model wants it, as llama-server does (the chat layer rendered the template itself).
   */
  async prepareRaw(request: RawCompletionBody, signal: AbortSignal): Promise<PreparedGeneration> {
    if (!this.context) throw notForGeneration();
    const bytes = Buffer.byteLength(request.prompt);
    refuseProvablyTooLong(bytes, this.longestTokenBytes(), this.info.contextSize, "prompt");
    const tokens = this.tokenizeRaw(request.prompt, true, true);
    const grammar = request.grammar === "" ? null : await this.grammars.get(request.grammar);
    const maxTokens = request.n_predict === -1 ? null : request.n_predict;
    return this.prepare(tokens, maxTokens, [...request.stop], new Set(), request, signal, "prompt", {
      grammar,
      nProbs: request.n_probs,
    });
  }

  /**
   * A raw prompt's tokens exactly as `/completion` evaluates them (`addSpecial`: BOS when the model wants it;
   * `parseSpecial`: special-token text becomes the token), for llama-server's `/tokenize` and token counting.
   */
  tokenizeRaw(prompt: string, addSpecial: boolean, parseSpecial: boolean): Token[] {
    const tokens = this.model.tokenize(prompt, parseSpecial);
    if (addSpecial && this.model.tokens.shouldPrependBosToken && this.model.tokens.bos !== null && tokens[0] !== this.model.tokens.bos) {
      tokens.unshift(this.model.tokens.bos);
    }
    return tokens;
  }

  private async prepare(
    tokens: Token[],
    requestedMaxTokens: number | null,
    stopStrings: string[],
    stopTokens: Set<Token>,
    request: SamplingInput,
    signal: AbortSignal,
    promptParam = "messages",
    raw: RawExtras | null = null,
  ): Promise<PreparedGeneration> {
    const contextSize = this.info.contextSize;
    // at least one token must be generated, and nothing is ever cut from the prompt to make room
    if (tokens.length >= contextSize) {
      throw new LmxError(
        "context_length_exceeded",
        `this model's context is ${contextSize} tokens per request, but the prompt has ${tokens.length} tokens; shorten it or load the model with a larger context_size`,
        { param: promptParam },
      );
    }
    const room = contextSize - tokens.length;
    if (requestedMaxTokens !== null && requestedMaxTokens > room) {
      throw new LmxError(
        "context_length_exceeded",
        `this model's context is ${contextSize} tokens per request; the prompt has ${tokens.length} tokens and max_tokens asks for ${requestedMaxTokens} more (at most ${room} fit)`,
        { param: "max_tokens" },
      );
    }
    const lease = await this.slots.acquire(tokens, signal);
    return {
      promptTokens: tokens,
      lease,
      maxTokens: requestedMaxTokens ?? room,
      stopStrings,
      stopTokens,
      ignoreEos: request.ignore_eos === true,
      raw,
      sampling: {
        temperature: request.temperature ?? SAMPLING_DEFAULTS.temperature,
        topK: request.top_k ?? SAMPLING_DEFAULTS.topK,
        topP: request.top_p ?? SAMPLING_DEFAULTS.topP,
        minP: request.min_p ?? SAMPLING_DEFAULTS.minP,
        // -1 is llama-server's "random"
        seed: request.seed !== null && request.seed !== undefined && request.seed !== -1 ? request.seed : Math.floor(Math.random() * 0xffffffff),
        presencePenalty: request.presence_penalty ?? 0,
        frequencyPenalty: request.frequency_penalty ?? 0,
      },
    };
  }

  /** Releases a slot that was prepared but never generated on (e.g. the client left before the start). */
  release(prepared: PreparedGeneration): void {
    this.slots.release(prepared.lease);
  }

  /**
   * `onText` gets each piece of text as it becomes final; for a raw generation with `n_probs`, also the
   * probabilities of the tokens that piece completes (llama-server's `completion_probabilities` entries).
   */
  async generate(
    prepared: PreparedGeneration,
    onText: (text: string, probabilities?: CompletionProbability[]) => void,
    signal: AbortSignal,
  ): Promise<GenerationResult> {
    const { slot, reusable } = prepared.lease;
    const sequence = slot.sequence;
    const { promptTokens, sampling } = prepared;
    this.stats.requestsActive++;
    const started = performance.now();
    let firstTokenAt = 0;
    let text = "";
    let completionTokens = 0;
    let finishReason: FinishReason = "stop";
    let stopType: StopType = "eos";
    let stoppingWord = "";
    let generating = false;
    const raw = prepared.raw;
    // per-token entries waiting for the text they belong to (only with n_probs)
    const pendingProbabilities: CompletionProbability[] | null = raw && raw.nProbs > 0 ? [] : null;
    try {
      if (sequence.nextTokenIndex > reusable) {
        await sequence.eraseContextTokenRanges([{ start: reusable, end: sequence.nextTokenIndex }]);
      }
      const evaluateTokens = promptTokens.slice(reusable);
      this.stats.promptTokensEvaluated += evaluateTokens.length;
      this.stats.promptTokensCached += reusable;
      const history: Token[] = promptTokens.slice(-PENALTY_LAST_N);
      // the raw dialect shows special tokens as their text (llama-server with the markers preserved)
      const special = raw !== null;
      const detokenizer = new IncrementalDetokenizer<Token>((tokens, lastTokens) => this.model.detokenize(tokens, special, lastTokens), promptTokens);
      const matcher = new StopStringMatcher(prepared.stopStrings);
      const usePenalty = sampling.presencePenalty !== 0 || sampling.frequencyPenalty !== 0;
      const options = {
        // node-llama-cpp ends the iterator at an end-of-generation token unless asked to yield it
        yieldEogToken: prepared.ignoreEos,
        temperature: sampling.temperature,
        topK: sampling.topK,
        topP: sampling.topP,
        minP: sampling.minP,
        seed: sampling.seed,
        ...(usePenalty
          ? {
              repeatPenalty: {
                punishTokens: () => history.slice(-PENALTY_LAST_N),
                penalty: 1,
                presencePenalty: sampling.presencePenalty,
                frequencyPenalty: sampling.frequencyPenalty,
              },
            }
          : {}),
        ...(raw?.grammar ? { grammarEvaluationState: new LlamaGrammarEvaluationState({ model: this.model, grammar: raw.grammar }) } : {}),
      };
      let lastProbabilities: Map<Token, number> | null = null;
      const iterator = pendingProbabilities
        ? tokensOf(sequence.evaluateWithMetadata(evaluateTokens, { probabilities: true }, options), (p) => (lastProbabilities = p))
        : sequence.evaluate(evaluateTokens, options);
      const emit = (piece: string) => {
        if (piece.length === 0) return;
        text += piece;
        if (pendingProbabilities && pendingProbabilities.length > 0) onText(piece, pendingProbabilities.splice(0));
        else onText(piece);
      };
      let stopped = false;
      this.batchGate.generating++;
      generating = true;
      for await (const token of iterator) {
        if (firstTokenAt === 0) firstTokenAt = performance.now();
        if (signal.aborted) break;
        const endOfGeneration = prepared.ignoreEos && (prepared.stopTokens.has(token) || this.model.isEogToken(token));
        if (!endOfGeneration && prepared.stopTokens.has(token)) {
          stopped = true;
          break;
        }
        completionTokens++;
        history.push(token);
        if (pendingProbabilities && lastProbabilities)
          pendingProbabilities.push(this.tokenProbabilities.entry(token, lastProbabilities, raw!.nProbs));
        if (endOfGeneration) {
          // ignore_eos: the token counts and stays in the context (as vLLM does), but has no text to show
          if (completionTokens >= prepared.maxTokens) {
            finishReason = "length";
            break;
          }
          continue;
        }
        if (this.testTokenDelayMs > 0) await new Promise((r) => setTimeout(r, this.testTokenDelayMs));
        const scan = matcher.push(detokenizer.push(token));
        emit(scan.emit);
        if (scan.stopped) {
          stopped = true;
          stopType = "word";
          stoppingWord = scan.word ?? "";
          break;
        }
        if (completionTokens >= prepared.maxTokens) {
          finishReason = "length";
          break;
        }
      }
      if (!stopped) {
        const tail = matcher.push(detokenizer.flush());
        emit(tail.emit);
        if (tail.stopped) {
          finishReason = "stop";
          stopType = "word";
          stoppingWord = tail.word ?? "";
        } else emit(matcher.flush());
        // tokens that wrote no text of their own still have their probabilities
        if (pendingProbabilities && pendingProbabilities.length > 0 && !tail.stopped) onText("", pendingProbabilities.splice(0));
      }
      if (finishReason === "length" && stopType !== "word") stopType = "limit";
      this.stats.generatedTokens += completionTokens;
      this.stats.requestsServed++;
      const end = performance.now();
      return {
        text,
        finishReason,
        stopType,
        stoppingWord,
        promptTokens: promptTokens.length,
        cachedTokens: reusable,
        completionTokens,
        promptMs: (firstTokenAt || end) - started,
        generationMs: end - (firstTokenAt || end),
      };
    } finally {
      if (generating) this.batchGate.generating--;
      this.slots.release(prepared.lease);
      this.stats.requestsActive--;
    }
  }

  async embed(request: EmbeddingRequest): Promise<EmbeddingResult> {
    if (!this.isEmbeddingModel) {
      throw new LmxError("model_not_embedding", `model '${request.model}' is not loaded as an embedding model; set type: embedding in its config`, {
        param: "model",
      });
    }
    const inputs = typeof request.input === "string" ? [request.input] : request.input;
    const contextSize = this.info.contextSize;
    let promptTokens = 0;
    const tokenized = inputs.map((input, index) => {
      const tokens = this.model.tokenize(input, false);
      if (tokens.length + 2 > contextSize) {
        throw new LmxError("context_length_exceeded", `input[${index}] has ${tokens.length} tokens; this model embeds at most ${contextSize - 2}`, {
          param: "input",
        });
      }
      promptTokens += tokens.length;
      return input;
    });
    const context = await this.acquireEmbeddingContext();
    this.stats.requestsActive++;
    try {
      const vectors: number[][] = [];
      for (const input of tokenized) {
        const embedding = await context.getEmbeddingFor(input);
        vectors.push(Array.from(embedding.vector));
      }
      this.stats.requestsServed++;
      this.stats.promptTokensEvaluated += promptTokens;
      return { vectors, promptTokens };
    } finally {
      this.stats.requestsActive--;
      this.releaseEmbeddingContext(context);
    }
  }

  private acquireEmbeddingContext(): Promise<LlamaEmbeddingContext> {
    const idle = this.idleEmbeddingContexts.pop();
    if (idle) return Promise.resolve(idle);
    return new Promise((resolve) => this.embeddingWaiters.push(resolve));
  }

  private releaseEmbeddingContext(context: LlamaEmbeddingContext): void {
    const waiter = this.embeddingWaiters.shift();
    if (waiter) waiter(context);
    else this.idleEmbeddingContexts.push(context);
  }

  async dispose(): Promise<void> {
    await this.tokenizerThread?.close();
    for (const ctx of this.embeddingPool) await ctx.dispose();
    if (this.context) await this.context.dispose();
    await this.model.dispose();
    await this.llama.dispose();
  }
}

/**
 * llama.cpp's estimators for exactly the context we will create (sequences and batch included).
 * `gpuOffload` says whether layers go to a GPU when gpu_layers is "auto"/"max": by default whether this
 * process's llama has one; the llama-server engine computes it for a differently built binary.
 */
export async function estimateMemory(
  llama: Llama,
  init: RunnerInitMessage,
  gpuOffload: boolean = llama.gpu !== false,
): Promise<{ estimate: MemoryEstimate; trainContextSize: number }> {
  let insights: GgufInsights;
  try {
    insights = await GgufInsights.from(await readGgufFileInfo(init.modelPath), llama);
  } catch (error) {
    throw classifyLoadError(error, init.modelPath);
  }
  const { settings } = init;
  const trainContextSize = insights.trainContextSize ?? DEFAULT_MAX_CONTEXT;
  const contextSize = defaultContextSize(settings.contextSize, trainContextSize);
  // no GPU to offload to (or gpu: cpu): llama.cpp ignores gpu_layers and everything is RAM
  const offload = gpuOffload && settings.gpu !== "cpu";
  const gpuLayers = !offload ? 0 : typeof settings.gpuLayers === "number" ? settings.gpuLayers : insights.totalLayers;
  const embedding = init.modelType === "embedding";
  const contextOptions = {
    contextSize,
    modelGpuLayers: gpuLayers,
    batchSize: embedding ? Math.min(settings.batchSize, contextSize) : settings.batchSize,
    sequences: embedding ? 1 : settings.parallel,
    isEmbeddingContext: embedding,
  };
  // Estimating for another binary's GPU (the llama-server engine's CPU-only estimate process): node-llama-cpp's
  // simulation allocates on this process's backends, the CPU alone, and would report the offloaded weights and
  // KV cache as RAM. Its arithmetic estimators split tensors and KV cache by layer instead (CUDA builds run flash
  // attention under "auto").
  const offloadedElsewhere = gpuLayers > 0 && llama.gpu === false;
  const model = offloadedElsewhere
    ? insights.estimateModelResourceRequirements({ gpuLayers, useMmap: false })
    : await insights.estimateModelResourceRequirementsV2({ gpuLayers });
  const context = offloadedElsewhere
    ? insights.estimateContextResourceRequirements({ ...contextOptions, flashAttention: settings.flashAttention !== false })
    : await insights.estimateContextResourceRequirementsV2({ ...contextOptions, flashAttention: settings.flashAttention });
  const contexts = embedding ? settings.parallel : 1;
  return {
    estimate: {
      ram: model.cpuRam + context.cpuRam * contexts,
      vram: model.gpuVram + context.gpuVram * contexts,
      modelRam: model.cpuRam,
      contextRam: context.cpuRam * contexts,
      modelVram: model.gpuVram,
      contextVram: context.gpuVram * contexts,
    },
    trainContextSize,
  };
}

/** The template facts the chat layer renders prompts with, from the GGUF as llama.cpp read it. */
function templateInfo(model: LlamaModel): TemplateInfo {
  const metadata = model.fileInfo.metadata as { tokenizer?: { chat_template?: unknown } };
  const jinja = metadata.tokenizer?.chat_template;
  return {
    jinja: typeof jinja === "string" && jinja !== "" ? jinja : null,
    bosToken: model.tokens.bosString,
    eosToken: model.tokens.eosString,
    addsBos: model.tokens.shouldPrependBosToken,
  };
}

/** The tokens of an evaluation with metadata, handing each token's probabilities to `take` first. */
async function* tokensOf(
  outputs: AsyncGenerator<{ token: Token; probabilities: Map<Token, number> }>,
  take: (probabilities: Map<Token, number>) => void,
): AsyncGenerator<Token> {
  for await (const output of outputs) {
    take(output.probabilities);
    yield output.token;
  }
}

function contextMemoryOf(context: LlamaEmbeddingContext): { ram: number; vram: number } {
  const inner = (context as unknown as { _llamaContext?: LlamaContext })._llamaContext;
  return inner ? inner.memoryUsage : { ram: 0, vram: 0 };
}

function sumMemory(parts: Array<{ ram: number; vram: number }>): { ram: number; vram: number } {
  return parts.reduce((a, b) => ({ ram: a.ram + b.ram, vram: a.vram + b.vram }), { ram: 0, vram: 0 });
}

function notForGeneration(): LmxError {
  return new LmxError("model_is_embedding", "this model is loaded as an embedding model; use /v1/embeddings", { param: "model" });
}

function numberOr(value: number | undefined, fallback: number): number {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

/**
 * node-llama-cpp keeps its native context private and its methods read-only; a proxy in front of it is the
 * only way to count decode calls, which is how we show (and test) that concurrent sequences share batches.
 * Bound methods are cached so the hot path pays one Map lookup, not a new closure per call.
 */
function countDecodeCalls(context: LlamaContext, stats: RunnerStats): void {
  const holder = context as unknown as { _ctx?: object };
  const native = holder._ctx;
  if (!native) return;
  const bound = new Map<PropertyKey, unknown>();
  holder._ctx = new Proxy(native, {
    get(target, prop) {
      const cached = bound.get(prop);
      if (cached !== undefined) return cached;
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      const method = value as (...args: unknown[]) => unknown;
      const wrapped =
        prop === "decodeBatch"
          ? (...args: unknown[]) => {
              stats.decodeCalls++;
              return method.apply(target, args);
            }
          : method.bind(target);
      bound.set(prop, wrapped);
      return wrapped;
    },
  });
}

export function classifyLoadError(error: unknown, modelPath: string): LmxError {
  const message = error instanceof Error ? error.message : String(error);
  const name = error instanceof Error ? error.constructor.name : "";
  const fileProblem =
    name === "InvalidGgufMagicError" ||
    error instanceof TypeError ||
    error instanceof RangeError ||
    /failed to load model|invalid|magic|unsupported|unknown model architecture|gguf/i.test(message);
  if (fileProblem) {
    return new LmxError("model_file_invalid", `cannot load ${modelPath}: ${message}`, { cause: error });
  }
  if ((error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
    return new LmxError("model_file_invalid", `model file not found: ${modelPath}`, { cause: error });
  }
  return new LmxError("model_loader_crashed", `loading ${modelPath} failed: ${message}`, { cause: error });
}
