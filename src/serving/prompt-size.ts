/**
 * max_prompt_bytes: the text a request asks a runner to tokenize (messages, prompt, embedding input), capped
 * before it reaches a runner. node-llama-cpp tokenizes synchronously, about a second per megabyte on a small
 * CPU, and every stream of that runner waits meanwhile; llama-server spends the time too.
 */
import { LmxError } from "../errors/codes.js";
import { messageText } from "../api/openai/messages.js";

interface PromptFields {
  messages?: ReadonlyArray<{ content: Parameters<typeof messageText>[0] }>;
  prompt?: string | readonly string[];
  input?: string | readonly string[];
}

export function promptBytes(body: PromptFields): number {
  let bytes = 0;
  for (const message of body.messages ?? []) bytes += Buffer.byteLength(messageText(message.content));
  for (const field of [body.prompt, body.input]) {
    if (typeof field === "string") bytes += Buffer.byteLength(field);
    else if (field) for (const text of field) bytes += Buffer.byteLength(text);
  }
  return bytes;
}

/** `request` is a validated generation or embedding request; the fields it lacks count nothing. */
export function checkPromptSize(request: object, maxPromptBytes: number): void {
  const body = request as PromptFields;
  const bytes = promptBytes(body);
  if (bytes <= maxPromptBytes) return;
  const param = body.messages ? "messages" : body.prompt !== undefined ? "prompt" : "input";
  throw new LmxError(
    "request_too_large",
    `the ${param} text is ${bytes} bytes; this server accepts at most ${maxPromptBytes} (max_prompt_bytes) per request`,
    { param },
  );
}
