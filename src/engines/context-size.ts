/** Tokens per sequence when a model's settings leave context_size open: its training context, capped. */
export const DEFAULT_MAX_CONTEXT = 4096;

export function defaultContextSize(configured: number | null, trainContextSize: number): number {
  return configured ?? Math.min(trainContextSize || DEFAULT_MAX_CONTEXT, DEFAULT_MAX_CONTEXT);
}
