/**
 * Waits for a client's socket to take more bytes, for a bounded time: a client that stops reading an answer
 * larger than the kernel's socket buffers would otherwise hold its model sequence until it disconnects.
 */
export type DrainResult = "drained" | "aborted" | "timed_out";

export function drainWithin(raw: NodeJS.WritableStream, signal: AbortSignal, timeoutMs: number): Promise<DrainResult> {
  if (signal.aborted) return Promise.resolve("aborted");
  return new Promise((resolve) => {
    const finish = (result: DrainResult) => {
      clearTimeout(timer);
      raw.removeListener("drain", onDrain);
      signal.removeEventListener("abort", onAbort);
      resolve(result);
    };
    const onDrain = () => finish("drained");
    const onAbort = () => finish("aborted");
    const timer = setTimeout(() => finish("timed_out"), timeoutMs);
    raw.once("drain", onDrain);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
