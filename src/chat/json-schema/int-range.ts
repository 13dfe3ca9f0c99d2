/**
 * GBNF expressions for bounded decimal numbers. Integers are written without leading zeros and never as "-0",
 * so every string the expression matches reads back as a number inside the range.
 */

/** Integers a grammar writes when a side is unbounded: at most 15 digits, so random weights cannot run on. */
export const MAX_DIGITS = 15;
export const INT_CAP = 10n ** BigInt(MAX_DIGITS) - 1n;

/** The integers in [lo, hi] (lo <= hi). */
export function integerRange(lo: bigint, hi: bigint): string {
  const alts: string[] = [];
  if (lo < 0n) alts.push(`"-" (${naturalRange(hi < 0n ? -hi : 1n, -lo)})`);
  if (hi >= 0n) alts.push(naturalRange(lo > 0n ? lo : 0n, hi));
  return alts.join(" | ");
}

/** Non-negative integers in [lo, hi]: one alternative per digit count, each a same-length range. */
export function naturalRange(lo: bigint, hi: bigint): string {
  const hiText = hi.toString();
  // The common unbounded case stays one short alternative instead of fifteen.
  if (lo <= 1n && /^9+$/.test(hiText)) {
    const rest = repeatDigits(0, hiText.length - 1);
    return `${lo === 0n ? '"0" | ' : ""}[1-9]${rest ? ` ${rest}` : ""}`;
  }
  const loDigits = lo.toString().length;
  const alts: string[] = [];
  for (let d = loDigits; d <= hiText.length; d++) {
    const from = d === loDigits ? lo : 10n ** BigInt(d - 1);
    const to = d === hiText.length ? hi : 10n ** BigInt(d) - 1n;
    alts.push(sameLength(from.toString(), to.toString()));
  }
  return alts.join(" | ");
}

/**
 * Digit strings of one length between `a` and `b` (a <= b): after the common prefix, the first differing digit
 * splits the range into "a's digit, then anything >= a's tail", "a digit strictly between, then anything", and
 * "b's digit, then anything <= b's tail"; a side whose tail is all 0s (or all 9s) folds into the middle.
 */
function sameLength(a: string, b: string): string {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  const prefix = a.slice(0, i);
  if (i === a.length) return `"${prefix}"`;
  const lead = prefix ? `"${prefix}" ` : "";
  const x = a.charCodeAt(i) - 48;
  const y = b.charCodeAt(i) - 48;
  const rest = a.length - i - 1;
  if (rest === 0) return `${lead}${digitClass(x, y)}`;
  const aTail = a.slice(i + 1);
  const bTail = b.slice(i + 1);
  const lowFull = /^0+$/.test(aTail);
  const highFull = /^9+$/.test(bTail);
  const alts: string[] = [];
  if (!lowFull) alts.push(`${digitClass(x, x)} (${sameLength(aTail, "9".repeat(rest))})`);
  const midFrom = lowFull ? x : x + 1;
  const midTo = highFull ? y : y - 1;
  if (midFrom <= midTo) alts.push(`${digitClass(midFrom, midTo)} ${repeatDigits(rest, rest)}`);
  if (!highFull) alts.push(`${digitClass(y, y)} (${sameLength("0".repeat(rest), bTail)})`);
  return `${lead}(${alts.join(" | ")})`;
}

function digitClass(from: number, to: number): string {
  return from === to ? `[${from}]` : `[${from}-${to}]`;
}

/** `[0-9]` repeated min..max times ("" for none). */
function repeatDigits(min: number, max: number): string {
  if (max === 0) return "";
  if (min === 1 && max === 1) return "[0-9]";
  return min === max ? `[0-9]{${min}}` : `[0-9]{${min},${max}}`;
}

/** An inclusive integer interval, or null when empty. Unbounded sides stop at MAX_DIGITS digits. */
export function clampedInterval(lo: bigint | undefined, hi: bigint | undefined): [bigint, bigint] | null {
  let from = lo ?? -INT_CAP;
  let to = hi ?? INT_CAP;
  // A bound beyond the cap on the open side: allow the bound's own digit count instead of nothing.
  if (hi === undefined && from > to) to = 10n ** BigInt(from.toString().length) - 1n;
  if (lo === undefined && from > to) from = -(10n ** BigInt((-to).toString().length) - 1n);
  if (from > to) return null;
  // Both sides bounded: keep within the cap when that leaves something (zod's ±2^53-1 bounds become ±(10^15-1)).
  const capFrom = from < -INT_CAP ? -INT_CAP : from;
  const capTo = to > INT_CAP ? INT_CAP : to;
  return capFrom <= capTo ? [capFrom, capTo] : [from, to];
}

/** Bounds of a JSON Schema number-ish value, as written (integer values only for `number`). */
export interface NumericBounds {
  minimum?: number | undefined;
  maximum?: number | undefined;
  exclusiveMinimum?: number | undefined;
  exclusiveMaximum?: number | undefined;
}

/** The inclusive integer interval an integer schema allows; null when empty. */
export function integerInterval(bounds: NumericBounds): [bigint, bigint] | null {
  const lows: bigint[] = [];
  const highs: bigint[] = [];
  if (bounds.minimum !== undefined) lows.push(BigInt(Math.ceil(bounds.minimum)));
  if (bounds.exclusiveMinimum !== undefined) lows.push(BigInt(Math.floor(bounds.exclusiveMinimum)) + 1n);
  if (bounds.maximum !== undefined) highs.push(BigInt(Math.floor(bounds.maximum)));
  if (bounds.exclusiveMaximum !== undefined) highs.push(BigInt(Math.ceil(bounds.exclusiveMaximum)) - 1n);
  const lo = lows.length ? lows.reduce((m, v) => (v > m ? v : m)) : undefined;
  const hi = highs.length ? highs.reduce((m, v) => (v < m ? v : m)) : undefined;
  return clampedInterval(lo, hi);
}

/** A fraction that is never all zeros, so `k.f` lies strictly between k and k + 1. */
const NONZERO_FRACTION = `"." [0-9]{0,${MAX_DIGITS - 1}} [1-9]`;

/**
 * Numbers within integer-valued bounds (inclusive or exclusive), without exponent: whole numbers in the integer
 * interval, plus `k.f` / `-k.f` with a non-zero fraction for every k whose open interval (k, k+1) lies inside.
 * Returns null when nothing fits.
 */
export function numberRange(bounds: NumericBounds): string | null {
  const ints = integerInterval(bounds);
  // Real bounds as integers: v >= L (or > L), v <= U (or < U); for (k, k+1) to fit, L <= k and k + 1 <= U either way.
  const low = lowOf(bounds);
  const high = highOf(bounds);
  const alts: string[] = [];
  if (ints) alts.push(integerRange(ints[0], ints[1]));
  // Positive fractions: k in [max(L, 0), U - 1].
  const pos = clampedInterval(low !== undefined && low > 0n ? low : 0n, high === undefined ? undefined : high - 1n);
  if (pos && pos[1] >= 0n) alts.push(`(${naturalRange(pos[0] < 0n ? 0n : pos[0], pos[1])}) ${NONZERO_FRACTION}`);
  // Negative fractions -k.f: k in [max(-U, 0), -L - 1].
  const neg = clampedInterval(high !== undefined && -high > 0n ? -high : 0n, low === undefined ? undefined : -low - 1n);
  if (neg && neg[1] >= 0n) alts.push(`"-" (${naturalRange(neg[0] < 0n ? 0n : neg[0], neg[1])}) ${NONZERO_FRACTION}`);
  return alts.length ? alts.join(" | ") : null;
}

function lowOf(b: NumericBounds): bigint | undefined {
  const values = [b.minimum, b.exclusiveMinimum].filter((v): v is number => v !== undefined).map((v) => BigInt(v));
  return values.length ? values.reduce((m, v) => (v > m ? v : m)) : undefined;
}

function highOf(b: NumericBounds): bigint | undefined {
  const values = [b.maximum, b.exclusiveMaximum].filter((v): v is number => v !== undefined).map((v) => BigInt(v));
  return values.length ? values.reduce((m, v) => (v < m ? v : m)) : undefined;
}
