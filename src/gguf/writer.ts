/**
 * Minimal streaming GGUF v3 writer.
 *
 * Only what the project needs to synthesise models: scalar/array metadata and
 * F32/F16/Q4_0/Q8_0 tensors whose bytes are produced chunk by chunk, so multi-GB
 * files never have to fit in memory.
 */
import { open, rename, rm, type FileHandle } from "node:fs/promises";

const GGUF_MAGIC = Buffer.from("GGUF", "latin1");
const GGUF_VERSION = 3;
export const DEFAULT_GGUF_ALIGNMENT = 32;
/** ggml's GGML_MAX_NAME is 64 including the terminating NUL. */
const MAX_TENSOR_NAME_BYTES = 63;
const MAX_TENSOR_DIMS = 4;
const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Metadata values
// ---------------------------------------------------------------------------

export type GgufNumberType = "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64";
export type GgufBigIntType = "u64" | "i64";

export type GgufScalarValue =
  | { readonly type: GgufNumberType; readonly value: number }
  | { readonly type: GgufBigIntType; readonly value: bigint | number }
  | { readonly type: "bool"; readonly value: boolean }
  | { readonly type: "string"; readonly value: string };

/** Arrays of arrays are legal GGUF but nothing we write needs them. */
export type GgufArrayValue =
  | { readonly type: "array"; readonly itemType: GgufNumberType; readonly value: ArrayLike<number> }
  | { readonly type: "array"; readonly itemType: GgufBigIntType; readonly value: ReadonlyArray<bigint | number> }
  | { readonly type: "array"; readonly itemType: "bool"; readonly value: readonly boolean[] }
  | { readonly type: "array"; readonly itemType: "string"; readonly value: readonly string[] };

export type GgufValue = GgufScalarValue | GgufArrayValue;

/** Insertion order is the order keys are written in. */
export type GgufMetadata = Readonly<Record<string, GgufValue>>;

/** Shorthand constructors so metadata literals stay readable. */
export const gv = {
  u8: (value: number): GgufValue => ({ type: "u8", value }),
  i8: (value: number): GgufValue => ({ type: "i8", value }),
  u16: (value: number): GgufValue => ({ type: "u16", value }),
  i16: (value: number): GgufValue => ({ type: "i16", value }),
  u32: (value: number): GgufValue => ({ type: "u32", value }),
  i32: (value: number): GgufValue => ({ type: "i32", value }),
  f32: (value: number): GgufValue => ({ type: "f32", value }),
  f64: (value: number): GgufValue => ({ type: "f64", value }),
  u64: (value: bigint | number): GgufValue => ({ type: "u64", value }),
  i64: (value: bigint | number): GgufValue => ({ type: "i64", value }),
  bool: (value: boolean): GgufValue => ({ type: "bool", value }),
  str: (value: string): GgufValue => ({ type: "string", value }),
  numbers: (itemType: GgufNumberType, value: ArrayLike<number>): GgufValue => ({ type: "array", itemType, value }),
  strings: (value: readonly string[]): GgufValue => ({ type: "array", itemType: "string", value }),
} as const;

/** Wire ids from the GGUF spec (gguf_type). */
const GGUF_TYPE_ID = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;

// ---------------------------------------------------------------------------
// Tensor types
// ---------------------------------------------------------------------------

export type GgmlTensorType = "f32" | "f16" | "q4_0" | "q8_0";

/** ggml_type ids as stored in tensor infos. */
export const GGML_TYPE_ID: Readonly<Record<GgmlTensorType, number>> = { f32: 0, f16: 1, q4_0: 2, q8_0: 8 };

interface TypeTraits {
  /** Elements per block (1 for plain float types). */
  readonly blockElements: number;
  readonly blockBytes: number;
  /**
   * Chunks start on multiples of this. F16 uses 4 so every chunk starts on a
   * whole 32-bit random word and the bytes do not depend on the chunk size.
   */
  readonly chunkUnit: number;
}

const TYPE_TRAITS: Readonly<Record<GgmlTensorType, TypeTraits>> = {
  f32: { blockElements: 1, blockBytes: 4, chunkUnit: 4 },
  f16: { blockElements: 1, blockBytes: 2, chunkUnit: 4 },
  q4_0: { blockElements: 32, blockBytes: 18, chunkUnit: 18 }, // f16 scale + 32 x 4-bit
  q8_0: { blockElements: 32, blockBytes: 34, chunkUnit: 34 }, // f16 scale + 32 x int8
};

export function tensorElementCount(dims: readonly number[]): number {
  return dims.reduce((product, dim) => product * dim, 1);
}

/** Bytes the tensor occupies in the data section, excluding alignment padding. */
export function tensorByteSize(type: GgmlTensorType, dims: readonly number[]): number {
  const { blockElements, blockBytes } = TYPE_TRAITS[type];
  if (blockElements > 1 && (dims[0] ?? 0) % blockElements !== 0)
    throw new Error(`${type} tensors need ne[0] to be a multiple of ${blockElements}, got ${dims[0]}`);
  return (tensorElementCount(dims) / blockElements) * blockBytes;
}

/**
 * Produces the tensor's bytes for `target`, which covers bytes
 * [byteOffset, byteOffset + target.length) of the tensor. The writer guarantees
 * `target.byteOffset % 4 === 0` (typed-array views are safe) and that ranges
 * start and end on block boundaries. Fills should be pure functions of the
 * range so that rewriting a spec yields identical bytes.
 */
export type TensorFill = (target: Uint8Array, byteOffset: number) => void;

export interface GgufTensorSpec {
  readonly name: string;
  /** ggml "ne" order: fastest-varying dimension first. */
  readonly dims: readonly number[];
  readonly type: GgmlTensorType;
  readonly data: Uint8Array | TensorFill;
}

export interface GgufFileSpec {
  readonly metadata: GgufMetadata;
  readonly tensors: readonly GgufTensorSpec[];
  /** Written as `general.alignment`; defaults to 32. */
  readonly alignment?: number;
}

export interface WriteGgufOptions {
  /** Size of each streamed write; two buffers of this size are allocated. */
  readonly chunkBytes?: number;
}

// ---------------------------------------------------------------------------
// Float16 helpers
// ---------------------------------------------------------------------------

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE binary16 bits for `value`, round-to-nearest-even (Node 20 lacks Math.f16round). */
export function float32ToFloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const bits = u32Scratch[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) return sign | subnormalHalfMantissa(mantissa | 0x800000, 14 - halfExponent);
  const half = sign | (halfExponent << 10) | (mantissa >>> 13);
  return half + roundingIncrement(mantissa & 0x1fff, 0x1000, half);
}

function subnormalHalfMantissa(fullMantissa: number, shift: number): number {
  if (shift > 24) return 0;
  const truncated = fullMantissa >>> shift;
  const remainder = fullMantissa & ((1 << shift) - 1);
  return truncated + roundingIncrement(remainder, 1 << (shift - 1), truncated);
}

function roundingIncrement(remainder: number, halfway: number, truncated: number): number {
  return remainder > halfway || (remainder === halfway && (truncated & 1) === 1) ? 1 : 0;
}

export function float16BitsToFloat32(half: number): number {
  const sign = half & 0x8000 ? -1 : 1;
  const exponent = (half >>> 10) & 0x1f;
  const mantissa = half & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa !== 0 ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

// ---------------------------------------------------------------------------
// Deterministic fills
// ---------------------------------------------------------------------------

/**
 * Counter-based generator (lowbias32 over a Weyl sequence): word `counter` is a
 * pure function of (counter, key), so fills are independent of chunking and
 * can be re-run. Counters wrap at 2^32 words (16 GiB per tensor), far beyond
 * any tensor we write.
 */
function randomWord(counter: number, key: number): number {
  let x = (Math.imul(counter, 0x9e3779b1) + key) | 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Mixes an arbitrary integer seed into a 32-bit key. */
export function mixSeed(...parts: readonly number[]): number {
  let key = 0x1234567;
  for (const part of parts) key = randomWord(part >>> 0, key ^ Math.floor(part / 2 ** 32));
  return key;
}

export function hashString(text: string): number {
  let hash = 0x811c9dc5; // FNV-1a: tiny and good enough to decorrelate tensor names
  for (const byte of Buffer.from(text, "utf8")) hash = Math.imul(hash ^ byte, 0x01000193);
  return hash >>> 0;
}

export interface RandomFillOptions {
  readonly seed: number;
  /** Values are uniform in [-amplitude, amplitude]. */
  readonly amplitude: number;
}

/** Uniform pseudo-random weights in the tensor's own encoding. */
export function createRandomFill(type: GgmlTensorType, options: RandomFillOptions): TensorFill {
  const key = mixSeed(options.seed);
  switch (type) {
    case "f32":
      return randomF32Fill(key, options.amplitude);
    case "f16":
      return randomF16Fill(key, options.amplitude);
    case "q8_0":
      return randomBlockFill(key, options.amplitude / 127, TYPE_TRAITS.q8_0.blockBytes);
    case "q4_0":
      return randomBlockFill(key, options.amplitude / 8, TYPE_TRAITS.q4_0.blockBytes);
  }
}

function randomF32Fill(key: number, amplitude: number): TensorFill {
  const step = (2 * amplitude) / 2 ** 32;
  return (target, byteOffset) => {
    const values = float32View(target);
    const first = byteOffset / 4;
    for (let i = 0; i < values.length; i++) values[i] = randomWord(first + i, key) * step - amplitude;
  };
}

function randomF16Fill(key: number, amplitude: number): TensorFill {
  // One 32-bit word yields two halves through a 64K lookup table, which is far
  // cheaper per element than converting floats one at a time.
  const table = uniformHalfTable(amplitude);
  return (target, byteOffset) => {
    const halves = new Uint16Array(target.buffer, target.byteOffset, target.length / 2);
    const firstWord = byteOffset / 4;
    const pairs = halves.length >>> 1;
    const words = new Uint32Array(target.buffer, target.byteOffset, pairs);
    for (let i = 0; i < pairs; i++) {
      const r = randomWord(firstWord + i, key);
      words[i] = table[r & 0xffff]! | (table[r >>> 16]! << 16);
    }
    if (halves.length & 1) halves[halves.length - 1] = table[randomWord(firstWord + pairs, key) & 0xffff]!;
  };
}

const halfTables = new Map<number, Uint16Array>();

function uniformHalfTable(amplitude: number): Uint16Array {
  const cached = halfTables.get(amplitude);
  if (cached) return cached;
  const table = new Uint16Array(65536);
  for (let i = 0; i < table.length; i++) table[i] = float32ToFloat16Bits(((i + 0.5) / 32768 - 1) * amplitude);
  halfTables.set(amplitude, table);
  return table;
}

/**
 * Q8_0/Q4_0 blocks: a fixed f16 scale followed by random quant bytes. Random
 * bytes are uniform int8 values (Q8_0) or uniform nibbles (Q4_0), i.e. valid
 * and roughly uniform weights once dequantised.
 */
function randomBlockFill(key: number, scale: number, blockBytes: number): TensorFill {
  const scaleBits = float32ToFloat16Bits(scale);
  const quantWords = (blockBytes - 2) / 4;
  return (target, byteOffset) => {
    const firstBlock = byteOffset / blockBytes;
    const blocks = target.length / blockBytes;
    for (let b = 0; b < blocks; b++) {
      let p = b * blockBytes;
      target[p++] = scaleBits & 0xff;
      target[p++] = scaleBits >>> 8;
      const counter = (firstBlock + b) * quantWords;
      for (let w = 0; w < quantWords; w++, p += 4) {
        const r = randomWord(counter + w, key);
        target[p] = r;
        target[p + 1] = r >>> 8;
        target[p + 2] = r >>> 16;
        target[p + 3] = r >>> 24;
      }
    }
  };
}

/** Every element equals `value` (used for norm weights). */
export function createConstantFill(type: "f32" | "f16", value: number): TensorFill {
  if (type === "f32") return (target) => float32View(target).fill(value);
  const bits = float32ToFloat16Bits(value);
  return (target) => new Uint16Array(target.buffer, target.byteOffset, target.length / 2).fill(bits);
}

function float32View(target: Uint8Array): Float32Array {
  return new Float32Array(target.buffer, target.byteOffset, target.length / 4);
}

function bytesFill(bytes: Uint8Array): TensorFill {
  return (target, byteOffset) => target.set(bytes.subarray(byteOffset, byteOffset + target.length));
}

// ---------------------------------------------------------------------------
// Header encoding
// ---------------------------------------------------------------------------

/** Growable little-endian byte buffer for the (small) header. */
class ByteBuilder {
  private buffer = Buffer.alloc(64 * 1024);
  private length = 0;

  /** Returns the write offset; call it before reading `this.buffer`, which it may replace. */
  private reserve(bytes: number): number {
    const start = this.length;
    if (start + bytes > this.buffer.length) {
      const grown = Buffer.alloc(Math.max(this.buffer.length * 2, start + bytes));
      this.buffer.copy(grown, 0, 0, start);
      this.buffer = grown;
    }
    this.length += bytes;
    return start;
  }

  raw(bytes: Uint8Array): void {
    const at = this.reserve(bytes.length);
    this.buffer.set(bytes, at);
  }
  u8(v: number): void {
    const at = this.reserve(1);
    this.buffer.writeUInt8(v, at);
  }
  i8(v: number): void {
    const at = this.reserve(1);
    this.buffer.writeInt8(v, at);
  }
  u16(v: number): void {
    const at = this.reserve(2);
    this.buffer.writeUInt16LE(v, at);
  }
  i16(v: number): void {
    const at = this.reserve(2);
    this.buffer.writeInt16LE(v, at);
  }
  u32(v: number): void {
    const at = this.reserve(4);
    this.buffer.writeUInt32LE(v, at);
  }
  i32(v: number): void {
    const at = this.reserve(4);
    this.buffer.writeInt32LE(v, at);
  }
  f32(v: number): void {
    const at = this.reserve(4);
    this.buffer.writeFloatLE(v, at);
  }
  f64(v: number): void {
    const at = this.reserve(8);
    this.buffer.writeDoubleLE(v, at);
  }
  u64(v: bigint | number): void {
    const at = this.reserve(8);
    this.buffer.writeBigUInt64LE(toBigInt(v), at);
  }
  i64(v: bigint | number): void {
    const at = this.reserve(8);
    this.buffer.writeBigInt64LE(toBigInt(v), at);
  }
  bool(v: boolean): void {
    this.u8(v ? 1 : 0);
  }

  string(v: string): void {
    const bytes = Buffer.from(v, "utf8");
    this.u64(bytes.length);
    this.raw(bytes);
  }

  padTo(alignment: number): void {
    this.reserve(padding(this.length, alignment));
  }
  get size(): number {
    return this.length;
  }
  toBuffer(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

function toBigInt(v: bigint | number): bigint {
  if (typeof v === "number" && !Number.isSafeInteger(v)) throw new RangeError(`not a safe integer: ${v}`);
  return BigInt(v);
}

function padding(offset: number, alignment: number): number {
  return (alignment - (offset % alignment)) % alignment;
}

const INTEGER_TYPES: ReadonlySet<GgufNumberType> = new Set(["u8", "i8", "u16", "i16", "u32", "i32"]);

function writeNumber(out: ByteBuilder, type: GgufNumberType, value: number): void {
  // Buffer's writers range-check but silently truncate fractions.
  if (INTEGER_TYPES.has(type) && !Number.isInteger(value)) throw new RangeError(`${type} value ${value} is not an integer`);
  out[type](value);
}

function writeValue(out: ByteBuilder, value: GgufValue): void {
  switch (value.type) {
    case "bool":
      return out.bool(value.value);
    case "string":
      return out.string(value.value);
    case "u64":
    case "i64":
      return out[value.type](value.value);
    case "array":
      return writeArray(out, value);
    default:
      return writeNumber(out, value.type, value.value);
  }
}

function writeArray(out: ByteBuilder, array: GgufArrayValue): void {
  out.u32(GGUF_TYPE_ID[array.itemType]);
  out.u64(array.value.length);
  switch (array.itemType) {
    case "bool":
      for (const item of array.value) out.bool(item);
      return;
    case "string":
      for (const item of array.value) out.string(item);
      return;
    case "u64":
    case "i64":
      for (const item of array.value) out[array.itemType](item);
      return;
    default:
      for (let i = 0; i < array.value.length; i++) writeNumber(out, array.itemType, array.value[i]!);
      return;
  }
}

interface TensorLayout {
  readonly spec: GgufTensorSpec;
  readonly offset: number;
  readonly bytes: number;
}

function layoutTensors(tensors: readonly GgufTensorSpec[], alignment: number): TensorLayout[] {
  let offset = 0;
  return tensors.map((spec) => {
    const bytes = tensorByteSize(spec.type, spec.dims);
    const layout = { spec, offset, bytes };
    offset += bytes + padding(bytes, alignment);
    return layout;
  });
}

function encodeHeader(metadata: GgufMetadata, alignment: number, layout: readonly TensorLayout[]): Buffer {
  const entries = Object.entries(metadata);
  const out = new ByteBuilder();
  out.raw(GGUF_MAGIC);
  out.u32(GGUF_VERSION);
  out.u64(layout.length);
  out.u64(entries.length + 1);
  for (const [key, value] of entries) {
    out.string(key);
    out.u32(GGUF_TYPE_ID[value.type]);
    writeValue(out, value);
  }
  out.string("general.alignment");
  out.u32(GGUF_TYPE_ID.u32);
  out.u32(alignment);
  for (const { spec, offset } of layout) {
    out.string(spec.name);
    out.u32(spec.dims.length);
    for (const dim of spec.dims) out.u64(dim);
    out.u32(GGML_TYPE_ID[spec.type]);
    out.u64(offset);
  }
  out.padTo(alignment);
  return out.toBuffer();
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

function validateSpec(spec: GgufFileSpec, alignment: number): void {
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0)
    throw new Error(`alignment must be a power of two, got ${alignment}`);
  if ("general.alignment" in spec.metadata) throw new Error("pass alignment via spec.alignment, not metadata, so layout and header agree");
  const names = new Set<string>();
  for (const tensor of spec.tensors) {
    validateTensor(tensor);
    if (names.has(tensor.name)) throw new Error(`duplicate tensor name ${tensor.name}`);
    names.add(tensor.name);
  }
}

function validateTensor(tensor: GgufTensorSpec): void {
  const nameBytes = Buffer.byteLength(tensor.name, "utf8");
  if (nameBytes === 0 || nameBytes > MAX_TENSOR_NAME_BYTES) throw new Error(`tensor name must be 1..${MAX_TENSOR_NAME_BYTES} bytes: ${tensor.name}`);
  if (tensor.dims.length === 0 || tensor.dims.length > MAX_TENSOR_DIMS) throw new Error(`${tensor.name}: need 1..${MAX_TENSOR_DIMS} dims`);
  if (!tensor.dims.every((dim) => Number.isSafeInteger(dim) && dim > 0))
    throw new Error(`${tensor.name}: dims must be positive integers, got [${tensor.dims.join(", ")}]`);
  const bytes = tensorByteSize(tensor.type, tensor.dims);
  if (tensor.data instanceof Uint8Array && tensor.data.length !== bytes)
    throw new Error(`${tensor.name}: expected ${bytes} data bytes, got ${tensor.data.length}`);
}

// ---------------------------------------------------------------------------
// Streaming output
// ---------------------------------------------------------------------------

/**
 * Double-buffered sequential writer: the next chunk is generated on the main
 * thread while the previous one is being written by the libuv pool, so data
 * generation and disk I/O overlap.
 */
class ChunkedSink {
  private readonly buffers: [Uint8Array, Uint8Array];
  private next = 0;
  private pending: Promise<void> = Promise.resolve();
  bytesWritten = 0;

  constructor(
    private readonly file: FileHandle,
    private readonly capacity: number,
  ) {
    this.buffers = [new Uint8Array(new ArrayBuffer(capacity)), new Uint8Array(new ArrayBuffer(capacity))];
  }

  /** Streams `totalBytes` produced by `fill`, chunked on multiples of `unitBytes`. */
  async write(totalBytes: number, unitBytes: number, fill: TensorFill): Promise<void> {
    const chunkBytes = Math.floor(this.capacity / unitBytes) * unitBytes;
    if (chunkBytes === 0) throw new Error(`chunk size ${this.capacity} is smaller than a ${unitBytes}-byte unit`);
    for (let offset = 0; offset < totalBytes; offset += chunkBytes) {
      const target = this.takeBuffer().subarray(0, Math.min(chunkBytes, totalBytes - offset));
      try {
        fill(target, offset);
      } catch (error) {
        // Let the in-flight write settle so the caller can close the file safely.
        await this.pending.catch(() => undefined);
        throw error;
      }
      // The buffer we just filled was last written two chunks ago; awaiting
      // the previous write before queueing keeps at most one write in flight.
      await this.pending;
      this.pending = writeFully(this.file, target);
      this.pending.catch(() => undefined); // surfaced by the next await, not as unhandled
      this.bytesWritten += target.length;
    }
  }

  async writeZeros(bytes: number): Promise<void> {
    if (bytes > 0) await this.write(bytes, 1, (target) => target.fill(0));
  }

  async flush(): Promise<void> {
    await this.pending;
  }

  private takeBuffer(): Uint8Array {
    const buffer = this.buffers[this.next]!;
    this.next ^= 1;
    return buffer;
  }
}

async function writeFully(file: FileHandle, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) {
    const { bytesWritten } = await file.write(data, written, data.length - written);
    written += bytesWritten;
  }
}

async function streamFile(file: FileHandle, header: Buffer, layout: readonly TensorLayout[], alignment: number, chunkBytes: number): Promise<number> {
  const sink = new ChunkedSink(file, chunkBytes);
  await sink.write(header.length, 1, bytesFill(header));
  for (const { spec, bytes } of layout) {
    const fill = spec.data instanceof Uint8Array ? bytesFill(spec.data) : spec.data;
    await sink.write(bytes, TYPE_TRAITS[spec.type].chunkUnit, fill);
    await sink.writeZeros(padding(bytes, alignment));
  }
  await sink.flush();
  return sink.bytesWritten;
}

/**
 * Writes a GGUF v3 file. Data goes to `path + ".tmp"` first and is renamed into
 * place only once complete, so an interrupted run never leaves a file at
 * `path` that looks loadable but is truncated.
 */
export async function writeGgufFile(path: string, spec: GgufFileSpec, options: WriteGgufOptions = {}): Promise<{ bytes: number }> {
  const alignment = spec.alignment ?? DEFAULT_GGUF_ALIGNMENT;
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  validateSpec(spec, alignment);
  const layout = layoutTensors(spec.tensors, alignment);
  const header = encodeHeader(spec.metadata, alignment, layout);
  const tmpPath = `${path}.tmp`;
  try {
    const file = await open(tmpPath, "w");
    let bytes: number;
    try {
      bytes = await streamFile(file, header, layout, alignment, chunkBytes);
    } finally {
      await file.close();
    }
    await rename(tmpPath, path);
    return { bytes };
  } catch (error) {
    await rm(tmpPath, { force: true });
    throw error;
  }
}
