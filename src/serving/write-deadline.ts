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

/** Without a write deadline a stalled client is waited for as long as it stays connected (setTimeout's maximum). */
const NO_DEADLINE_MS = 2 ** 31 - 1;

/**
 * A writer for one streamed answer in any dialect: writes `text` and, when the socket's buffer is full, waits for
 * the client within the write deadline. Resolves false when the answer must stop — the client left, or it left
 * written bytes unread too long (then `onTimeout` is told once and the socket is destroyed, which aborts the
 * generation through the request's close).
 */
export function deadlineWriter(
  raw: NodeJS.WritableStream & { destroy(): void },
  signal: AbortSignal,
  deadline: { ms: number; onTimeout: () => void } | undefined,
): (text: string) => Promise<boolean> {
  return async (text) => {
    if (text === "" || raw.write(text)) return true;
    const drained = await drainWithin(raw, signal, deadline?.ms ?? NO_DEADLINE_MS);
    if (drained === "timed_out") {
      deadline?.onTimeout();
      raw.destroy();
    }
    return drained === "drained";
  };
}

/** A request's write deadline with its timeout reported for `model` (what deadlineWriter takes). */
export function deadlineFor(
  input: { writeDeadline?: { ms: number; onTimeout: (model: string) => void } | undefined },
  model: string,
): { ms: number; onTimeout: () => void } | undefined {
  const deadline = input.writeDeadline;
  return deadline ? { ms: deadline.ms, onTimeout: () => deadline.onTimeout(model) } : undefined;
}
