/**
 * Random-weight llama-architecture models that llama.cpp loads and runs.
 *
 * The weights are noise, so the output is gibberish, but the shapes, tensor
 * names, metadata and tokenizer are real: compute cost, memory use and the
 * whole serving path behave like a genuine model of the same size.
 */
import {
  createConstantFill,
  createRandomFill,
  gv,
  hashString,
  mixSeed,
  writeGgufFile,
  type GgmlTensorType,
  type GgufMetadata,
  type GgufTensorSpec,
} from "./writer.js";

export interface LlamaShape {
  readonly nEmbd: number;
  readonly nLayer: number;
  readonly nHead: number;
  readonly nHeadKv: number;
  readonly nFf: number;
  readonly nVocab: number;
  readonly contextLength: number;
}

/**
 * Every width is a multiple of 32 so each preset works for Q4_0/Q8_0 as well.
 * tiny: ~0.9 MB in f32, for tests and the out-of-the-box demo model.
 * 100m: GPT-2-small widths, but with an untied output matrix (~134M params).
 * 500m: ~0.48B params. 1b: TinyLlama-1.1B shape.
 */
export const LLAMA_SHAPES = {
  tiny: { nEmbd: 64, nLayer: 2, nHead: 4, nHeadKv: 4, nFf: 128, nVocab: 1024, contextLength: 2048 },
  "100m": { nEmbd: 768, nLayer: 12, nHead: 12, nHeadKv: 12, nFf: 2048, nVocab: 32000, contextLength: 4096 },
  "500m": { nEmbd: 1280, nLayer: 20, nHead: 20, nHeadKv: 20, nFf: 3456, nVocab: 32000, contextLength: 4096 },
  "1b": { nEmbd: 2048, nLayer: 22, nHead: 32, nHeadKv: 4, nFf: 5632, nVocab: 32000, contextLength: 4096 },
} as const satisfies Record<string, LlamaShape>;

export type LlamaShapeName = keyof typeof LLAMA_SHAPES;
export type LlamaWeightType = "f32" | "f16" | "q8_0" | "q4_0";

export interface WriteLlamaModelOptions {
  readonly shape: LlamaShape;
  readonly weightType: LlamaWeightType;
  readonly seed: number;
  /** general.name */
  readonly name: string;
  /**
   * `"chatml"` adds a ChatML Jinja template and makes `<|im_end|>` the EOS token. A family template adds its own
   * special tokens to the vocabulary (see {@link FamilyChatTemplate}).
   */
  readonly chatTemplate?: "chatml" | FamilyChatTemplate;
}

/**
 * A chat template with the tokens its markers need. Each special token becomes ONE vocabulary entry (the last ids
 * of the vocabulary, replacing the rarest word pieces, so the ids of everything else stay as in the plain model).
 */
export interface FamilyChatTemplate {
  readonly jinja: string;
  /** Marker tokens, added as control tokens (llama.cpp parses them only as special text and does not print them). */
  readonly specialTokens: readonly string[];
  /**
   * Marker tokens added as user-defined tokens: one id each, and always printed, as real models ship some markers
   * (Qwen's `<tool_call>` and `<think>`).
   */
  readonly textTokens?: readonly string[] | undefined;
  /** The EOS token: one of the special tokens (or a built-in one). */
  readonly eosToken: string;
  /**
   * More tokens that end generation. llama.cpp has no metadata list of them: it recognises known texts
   * (`<|eot_id|>`, `<|eom_id|>`, `<|call|>`, `<|return|>`, `<|im_end|>`, ...); `tokenizer.ggml.eom_token_id` and
   * `tokenizer.ggml.eot_token_id` name one more each, and the writer uses them (at most one `<|eom_id|>` and one other).
   */
  readonly extraEogTokens?: readonly string[] | undefined;
  /** The BOS token; `<s>` when not given. */
  readonly bosToken?: string | undefined;
  /** tokenizer.ggml.add_bos_token; true when not given (as for the plain model). */
  readonly addBos?: boolean | undefined;
}

/** Standard ChatML template, as shipped by many HF models; node-llama-cpp recognises it. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** general.file_type values (llama_ftype). */
const FILE_TYPE: Readonly<Record<LlamaWeightType, number>> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7 };

/** Uniform in ±0.035 has std ≈ 0.02, the usual init scale, so activations stay finite. */
const WEIGHT_AMPLITUDE = 0.035;
const RMS_NORM_EPS = 1e-5;
const ROPE_FREQ_BASE = 10000;

export function llamaKvWidth(shape: LlamaShape): number {
  return (shape.nEmbd / shape.nHead) * shape.nHeadKv;
}

export function llamaParamCount(shape: LlamaShape): number {
  const { nEmbd, nLayer, nFf, nVocab } = shape;
  const kv = llamaKvWidth(shape);
  const perLayer = 2 * nEmbd + 2 * nEmbd * nEmbd + 2 * nEmbd * kv + 3 * nEmbd * nFf;
  return 2 * nVocab * nEmbd + nEmbd + nLayer * perLayer;
}

export async function writeLlamaModel(path: string, options: WriteLlamaModelOptions): Promise<{ bytes: number; paramCount: number }> {
  validateShape(options.shape, options.weightType);
  const family = typeof options.chatTemplate === "object" ? options.chatTemplate : null;
  const vocab = buildLlamaVocab(options.shape.nVocab, family ? familyTokens(family) : undefined);
  const { bytes } = await writeGgufFile(path, {
    metadata: llamaMetadata(options, vocab),
    tensors: llamaTensors(options),
  });
  return { bytes, paramCount: llamaParamCount(options.shape) };
}

function validateShape(shape: LlamaShape, weightType: LlamaWeightType): void {
  const fields = Object.entries(shape);
  for (const [field, value] of fields) if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`shape.${field} must be a positive integer`);
  if (shape.nEmbd % shape.nHead !== 0) throw new Error("nEmbd must be divisible by nHead");
  if (shape.nHead % shape.nHeadKv !== 0) throw new Error("nHead must be divisible by nHeadKv");
  if ((shape.nEmbd / shape.nHead) % 2 !== 0) throw new Error("head size must be even for RoPE");
  // ne[0] of every matrix is nEmbd or nFf, and quant blocks run along ne[0].
  if (weightType.startsWith("q") && (shape.nEmbd % 32 !== 0 || shape.nFf % 32 !== 0))
    throw new Error(`${weightType} needs nEmbd and nFf to be multiples of 32`);
  if (shape.nVocab < MIN_VOCAB) throw new Error(`nVocab must be at least ${MIN_VOCAB}`);
}

// ---------------------------------------------------------------------------
// Tensors
// ---------------------------------------------------------------------------

function llamaTensors(options: WriteLlamaModelOptions): GgufTensorSpec[] {
  const { nEmbd, nVocab, nLayer } = options.shape;
  const matrix = (name: string, dims: readonly number[]): GgufTensorSpec => ({
    name,
    dims,
    type: options.weightType,
    data: createRandomFill(options.weightType, { seed: mixSeed(options.seed, hashString(name)), amplitude: WEIGHT_AMPLITUDE }),
  });
  const tensors = [matrix("token_embd.weight", [nEmbd, nVocab]), normTensor("output_norm.weight", nEmbd)];
  tensors.push(matrix("output.weight", [nEmbd, nVocab]));
  for (let layer = 0; layer < nLayer; layer++) tensors.push(...blockTensors(options.shape, layer, matrix));
  return tensors;
}

function blockTensors(shape: LlamaShape, layer: number, matrix: (name: string, dims: readonly number[]) => GgufTensorSpec): GgufTensorSpec[] {
  const { nEmbd, nFf } = shape;
  const kv = llamaKvWidth(shape);
  const name = (suffix: string): string => `blk.${layer}.${suffix}.weight`;
  return [
    normTensor(name("attn_norm"), nEmbd),
    matrix(name("attn_q"), [nEmbd, nEmbd]),
    matrix(name("attn_k"), [nEmbd, kv]),
    matrix(name("attn_v"), [nEmbd, kv]),
    matrix(name("attn_output"), [nEmbd, nEmbd]),
    normTensor(name("ffn_norm"), nEmbd),
    matrix(name("ffn_gate"), [nEmbd, nFf]),
    matrix(name("ffn_up"), [nEmbd, nFf]),
    matrix(name("ffn_down"), [nFf, nEmbd]),
  ];
}

/** Norms stay F32 (as llama.cpp's converters do) and at 1.0 so they pass activations through. */
function normTensor(name: string, width: number): GgufTensorSpec {
  const type: GgmlTensorType = "f32";
  return { name, dims: [width], type, data: createConstantFill(type, 1) };
}

// ---------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------

function llamaMetadata(options: WriteLlamaModelOptions, vocab: LlamaVocab): GgufMetadata {
  const { shape } = options;
  const chat = options.chatTemplate === "chatml";
  const family = typeof options.chatTemplate === "object" ? options.chatTemplate : null;
  const quantized = options.weightType === "q8_0" || options.weightType === "q4_0";
  return {
    "general.architecture": gv.str("llama"),
    "general.name": gv.str(options.name),
    "general.file_type": gv.u32(FILE_TYPE[options.weightType]),
    ...(quantized ? { "general.quantization_version": gv.u32(2) } : {}),
    "llama.context_length": gv.u32(shape.contextLength),
    "llama.embedding_length": gv.u32(shape.nEmbd),
    "llama.block_count": gv.u32(shape.nLayer),
    "llama.feed_forward_length": gv.u32(shape.nFf),
    "llama.attention.head_count": gv.u32(shape.nHead),
    "llama.attention.head_count_kv": gv.u32(shape.nHeadKv),
    "llama.rope.dimension_count": gv.u32(shape.nEmbd / shape.nHead),
    "llama.rope.freq_base": gv.f32(ROPE_FREQ_BASE),
    "llama.attention.layer_norm_rms_epsilon": gv.f32(RMS_NORM_EPS),
    "llama.vocab_size": gv.u32(shape.nVocab),
    "tokenizer.ggml.model": gv.str("llama"),
    "tokenizer.ggml.tokens": gv.strings(vocab.tokens),
    "tokenizer.ggml.scores": gv.numbers("f32", vocab.scores),
    "tokenizer.ggml.token_type": gv.numbers("i32", vocab.types),
    "tokenizer.ggml.bos_token_id": gv.u32(family ? tokenId(vocab, family.bosToken ?? "<s>") : SPECIAL_IDS.bos),
    "tokenizer.ggml.eos_token_id": gv.u32(family ? tokenId(vocab, family.eosToken) : chat ? SPECIAL_IDS.imEnd : SPECIAL_IDS.eos),
    "tokenizer.ggml.unknown_token_id": gv.u32(SPECIAL_IDS.unk),
    "tokenizer.ggml.add_bos_token": gv.bool(family?.addBos ?? true),
    "tokenizer.ggml.add_eos_token": gv.bool(false),
    ...(chat ? { "tokenizer.chat_template": gv.str(CHATML_TEMPLATE) } : {}),
    ...(family ? familyMetadata(family, vocab) : {}),
  };
}

function familyMetadata(family: FamilyChatTemplate, vocab: LlamaVocab): GgufMetadata {
  const extras = family.extraEogTokens ?? [];
  const eom = extras.filter((text) => text === "<|eom_id|>");
  const eot = extras.filter((text) => text !== "<|eom_id|>");
  if (eot.length > 1) throw new Error(`llama.cpp reads one eot token id; got extra end-of-generation tokens ${eot.join(", ")}`);
  return {
    "tokenizer.chat_template": gv.str(family.jinja),
    ...(eot[0] === undefined ? {} : { "tokenizer.ggml.eot_token_id": gv.u32(tokenId(vocab, eot[0])) }),
    ...(eom[0] === undefined ? {} : { "tokenizer.ggml.eom_token_id": gv.u32(tokenId(vocab, eom[0])) }),
  };
}

function tokenId(vocab: LlamaVocab, text: string): number {
  const id = vocab.tokens.indexOf(text);
  if (id < 0) throw new Error(`token ${JSON.stringify(text)} is not in the vocabulary`);
  return id;
}

/** The family's marker tokens not already among the built-in specials, with their token types. */
function familyTokens(family: FamilyChatTemplate): ExtraToken[] {
  const builtin = new Set(SPECIAL_TOKENS.map(([text]) => text));
  const seen = new Set<string>();
  const extra: ExtraToken[] = [];
  const add = (text: string, type: number): void => {
    if (builtin.has(text) || seen.has(text)) return;
    if (text.length === 0) throw new Error("a special token cannot be empty");
    seen.add(text);
    extra.push({ text, type });
  };
  for (const text of family.specialTokens) add(text, TOKEN_TYPE.control);
  for (const text of family.textTokens ?? []) add(text, TOKEN_TYPE.userDefined);
  return extra;
}

// ---------------------------------------------------------------------------
// Synthetic SentencePiece vocabulary
// ---------------------------------------------------------------------------

/** llama_token_type values. */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, byte: 6 } as const;

/**
 * Fixed ids. The ChatML tokens exist in every vocabulary so that chat and
 * plain variants share one token layout.
 */
export const SPECIAL_IDS = { unk: 0, bos: 1, eos: 2, imStart: 3, imEnd: 4 } as const;
const SPECIAL_TOKENS: readonly (readonly [string, number])[] = [
  ["<unk>", TOKEN_TYPE.unknown],
  ["<s>", TOKEN_TYPE.control],
  ["</s>", TOKEN_TYPE.control],
  ["<|im_start|>", TOKEN_TYPE.control],
  ["<|im_end|>", TOKEN_TYPE.control],
];

const SPACE = "\u2581"; // SentencePiece's "▁" word-boundary marker

/** Initial symbols for the merge tokenizer; anything else falls back to byte tokens. */
const BASE_CHARS = [SPACE, ..."etaoinshrdlcumwfgypbvkjxqz", ..."TAISHWOBMCDLPNRFGEJKUVYQXZ", ..."0123456789", ...".,'\"!?-:;()"];

const MIN_VOCAB = SPECIAL_TOKENS.length + 256 + BASE_CHARS.length;

/** Frequent English words, most frequent first; capitalised forms cover sentence starts. */
const COMMON_WORDS = (
  "the a and to was of he in it she I you his her that they said on with for is at had but him " +
  "The one there day little time not up out so as be all we were one then very big can have " +
  "what do go came saw like when He She It They Once upon girl boy mom dad friend play happy " +
  "from this with some would could went back into an see my me no get make over about who your " +
  "love help find tree house dog cat ball sun water home good new wanted looked felt ran there " +
  "There One This Then But And In A so because are or by how did them their our more other " +
  "two first way down now look only come its over think also after use just man world life hand " +
  "part child eye woman place work week case point number group problem fact Today Yes Hello " +
  "thing people year know take person give tell ask seem feel try leave call year old great small " +
  "long large right high different next early young important few public bad same able last " +
  "time story king queen bird fish tiny park toy car red blue green sky tree flower garden " +
  "smile laugh sad scared brave kind nice pretty best happily together named lived called " +
  "where why which while many much every each always never again away around through under " +
  "begin began started stopped found made took gave told asked knew thought must should will " +
  "let well even still here yes hello thank please sorry okay question answer example model " +
  "text write read word words line data code file value test system user server request " +
  "if When If What How We You My Your Our These That For As At On After Before Some All No " +
  "than these those such any most both own off why near far open close run walk talk eat sleep " +
  "without within between against during before after until since instead however another " +
  "something nothing everything someone anyone everyone people family school city country water " +
  "money book music food night morning evening light dark hot cold warm fast slow hard easy " +
  "change changes client clients process result results error errors response time times " +
  "language model models train trained performance amount amounts internet scale simple " +
  "generate generated return returns receive receives stream token tokens prompt output input " +
  "support information government company business service market power level order area state"
).split(" ");

/** Word pieces for continuing words that are not whole vocabulary entries. */
const SUFFIXES = "s es ed ing er ers est ly tion tions ment ness ful less able ous ive al ity y en ism ist".split(" ");

const ONSETS = [
  "",
  "b",
  "c",
  "d",
  "f",
  "g",
  "h",
  "j",
  "k",
  "l",
  "m",
  "n",
  "p",
  "r",
  "s",
  "t",
  "v",
  "w",
  "y",
  "z",
  "bl",
  "br",
  "ch",
  "cl",
  "cr",
  "dr",
  "fl",
  "fr",
  "gl",
  "gr",
  "pl",
  "pr",
  "sc",
  "sh",
  "sk",
  "sl",
  "sm",
  "sn",
  "sp",
  "st",
  "sw",
  "th",
  "tr",
  "wh",
];
const NUCLEI = ["a", "e", "i", "o", "u", "y", "ai", "ea", "ee", "ie", "oa", "oo", "ou", "ay"];
const CODAS = ["", "n", "r", "s", "t", "l", "m", "d", "ck", "ng", "nd", "nt", "st", "rt", "sh", "th", "ll", "x"];

export interface LlamaVocab {
  readonly tokens: readonly string[];
  readonly scores: Float32Array;
  readonly types: Int32Array;
}

/**
 * Deterministic SentencePiece-style vocabulary of exactly `nVocab` unique
 * tokens: specials, the 256 byte-fallback tokens, single characters, then
 * whole words. Every word is added together with all of its prefixes: in
 * llama.cpp's SPM merge loop the leftmost symbol of a word is always a prefix,
 * so a prefix-closed vocabulary guarantees a known word always merges into one
 * token, whatever order the other merges happen in.
 */
export function buildLlamaVocab(nVocab: number, extra: readonly ExtraToken[] = []): LlamaVocab {
  const tokens = SPECIAL_TOKENS.map(([text]) => text);
  const types = SPECIAL_TOKENS.map(([, type]) => type);
  for (let byte = 0; byte < 256; byte++) {
    tokens.push(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(TOKEN_TYPE.byte);
  }
  const firstPiece = tokens.length;
  // Extra tokens take the last ids: the pieces they displace are the rarest ones, and the set stays
  // prefix-closed because a piece's prefixes always come before it.
  const pieces = collectPieces(nVocab - firstPiece - extra.length);
  tokens.push(...pieces);
  for (let i = 0; i < pieces.length; i++) types.push(TOKEN_TYPE.normal);
  const firstExtra = tokens.length;
  for (const token of extra) {
    if (pieces.includes(token.text)) throw new Error(`special token ${JSON.stringify(token.text)} collides with a word piece`);
    tokens.push(token.text);
    types.push(token.type);
  }
  // Earlier pieces merge first: scores fall with rank, like SentencePiece log-probs.
  const scores = Float32Array.from(tokens, (_, id) => (id < firstPiece || id >= firstExtra ? 0 : firstPiece - id));
  return { tokens, scores, types: Int32Array.from(types) };
}

/** A token added to the vocabulary whole (a chat template's marker). */
export interface ExtraToken {
  readonly text: string;
  /** A {@link TOKEN_TYPE} value: control or user-defined. */
  readonly type: number;
}

function collectPieces(budget: number): string[] {
  const pieces = new Set<string>();
  for (const candidate of pieceCandidates()) {
    addWithPrefixes(pieces, candidate, budget);
    if (pieces.size === budget) return [...pieces];
  }
  throw new Error(`cannot generate ${budget} unique vocabulary pieces`);
}

/** Adds the prefixes of `piece` shortest first, so a partial add still leaves the set prefix-closed. */
function addWithPrefixes(pieces: Set<string>, piece: string, budget: number): void {
  const chars = [...piece];
  const start = chars.length === 1 ? 1 : 2;
  for (let length = start; length <= chars.length && pieces.size < budget; length++) pieces.add(chars.slice(0, length).join(""));
}

function* pieceCandidates(): Generator<string> {
  yield* BASE_CHARS;
  // Suffixes go before words so even the tiny vocabulary splits "doing" as "do|ing".
  yield* SUFFIXES;
  for (const word of COMMON_WORDS) yield SPACE + word;
  const syllables = syllableList();
  for (const syllable of syllables) yield SPACE + syllable;
  yield* syllables;
  for (const syllable of syllables) yield SPACE + capitalize(syllable);
  // Diagonal order pairs simple syllables first instead of exhausting every
  // word that starts with "a"; alternate word starts and word continuations.
  for (const [first, second] of diagonalPairs(syllables)) {
    yield SPACE + first + second;
    yield first + second;
  }
}

/** Syllables ordered simplest first (components are listed by frequency). */
function syllableList(): string[] {
  const ranked: { text: string; rank: number }[] = [];
  NUCLEI.forEach((nucleus, n) =>
    ONSETS.forEach((onset, o) => CODAS.forEach((coda, c) => ranked.push({ text: onset + nucleus + coda, rank: o + n + c }))),
  );
  ranked.sort((a, b) => a.rank - b.rank); // stable, so ties keep generation order
  return [...new Set(ranked.map(({ text }) => text))];
}

function* diagonalPairs<T>(items: readonly T[]): Generator<readonly [T, T]> {
  for (let sum = 0; sum <= 2 * (items.length - 1); sum++)
    for (let i = Math.max(0, sum - items.length + 1); i <= Math.min(sum, items.length - 1); i++) yield [items[i]!, items[sum - i]!];
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
