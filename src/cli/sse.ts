/** Server-sent events as the OpenAI streaming routes send them: `data: <json>` events, ended by `data: [DONE]`. */

/** Yields each event's data (multi-line data joined with "\n"), stopping at [DONE] or the end of the body. */
export async function* sseData(body: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = "";
  let data: string[] = [];
  const flushEvent = function* (): Generator<string> {
    if (data.length > 0) yield data.join("\n");
    data = [];
  };
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffer.search(/\r?\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer[newline] === "\r" ? 2 : 1));
      if (line === "") {
        for (const event of flushEvent()) {
          if (event === "[DONE]") return;
          yield event;
        }
      } else if (line.startsWith("data:")) {
        data.push(line.slice(line[5] === " " ? 6 : 5));
      }
      // comments (":") and other fields (event:, id:, retry:) carry nothing the CLI needs
    }
  }
  buffer += decoder.decode();
  if (buffer.startsWith("data:")) data.push(buffer.slice(buffer[5] === " " ? 6 : 5));
  for (const event of flushEvent()) if (event !== "[DONE]") yield event;
}
