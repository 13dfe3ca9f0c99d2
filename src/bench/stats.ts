/** Order statistics for benchmark samples. Pure functions: the harness's numbers are only as good as these. */

/**
 * The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default, so figures
 * compare with vLLM's and llama.cpp's benchmark scripts). Null for no samples: "no data" is not 0 ms.
 */
export function percentile(samples: readonly number[], q: number): number | null {
  if (samples.length === 0) return null;
  if (!(q >= 0 && q <= 100)) throw new RangeError(`percentile must be within 0..100, got ${q}`);
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = (q / 100) * (sorted.length - 1);
  const lower = Math.floor(rank);
  const upper = Math.ceil(rank);
  const low = sorted[lower] as number;
  const high = sorted[upper] as number;
  return low + (high - low) * (rank - lower);
}

export function median(samples: readonly number[]): number | null {
  return percentile(samples, 50);
}

export function mean(samples: readonly number[]): number | null {
  if (samples.length === 0) return null;
  let sum = 0;
  for (const s of samples) sum += s;
  return sum / samples.length;
}

/** Median of the values that exist: rounds where a metric had no data do not drag it to 0. */
export function medianOfPresent(values: ReadonlyArray<number | null>): number | null {
  return median(values.filter((v): v is number => v !== null && Number.isFinite(v)));
}

export interface Distribution {
  p50: number | null;
  p95: number | null;
  p99: number | null;
  mean: number | null;
}

export function distribution(samples: readonly number[]): Distribution {
  return { p50: percentile(samples, 50), p95: percentile(samples, 95), p99: percentile(samples, 99), mean: mean(samples) };
}

/** a / b, or null when either side is missing or b is 0 (a ratio against nothing is not a number to print). */
export function ratio(a: number | null, b: number | null): number | null {
  if (a === null || b === null || b === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return null;
  return a / b;
}
