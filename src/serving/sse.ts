/**
 * The headers of every Server-Sent Events answer: never cached, kept open, and not buffered by proxies such as
 * nginx (which would otherwise hold events back).
 */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  connection: "keep-alive",
  "x-accel-buffering": "no",
};
