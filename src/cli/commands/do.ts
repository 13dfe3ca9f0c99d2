/** `lmx do "prompt"`: one chat turn, streamed to stdout as it is generated. */
import type { Command } from "commander";
import type { ChatMessage } from "../api-types.js";
import { DEFAULT_MAX_TOKENS, requestBody, streamChat, usageLine, withDefaultMaxTokens } from "../chat-stream.js";
import { clientFor, nonNegativeNumber, positiveInt, printJson, run, withConnection, type Io } from "../command-kit.js";
import { chooseModel } from "../default-model.js";
import { EXIT, usageError } from "../exit.js";
import type { ConnectionOptions } from "../target.js";

export interface GenerationOptions extends ConnectionOptions {
  model?: string;
  system?: string;
  maxTokens?: number;
  temperature?: number;
  verbose?: boolean;
}

interface DoOptions extends GenerationOptions {
  json?: boolean;
}

export function addGenerationOptions(command: Command): Command {
  return command
    .option("-m, --model <id>", "model id (or LMX_MODEL; default: the first loaded chat model, else the first available one)")
    .option("-s, --system <text>", "system prompt")
    .option("--max-tokens <n>", `most tokens to generate (default ${DEFAULT_MAX_TOKENS}, or the rest of the context where less fits)`, positiveInt)
    .option("--temperature <t>", "sampling temperature; 0 is greedy (default: the server's, 0.8)", nonNegativeNumber)
    .option("-v, --verbose", "after each answer, print the model, tokens (prompt, cached, completion) and speed on stderr");
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function doPrompt(words: string[], options: DoOptions, io: Io): Promise<number> {
  let prompt = words.join(" ");
  if (!prompt && !process.stdin.isTTY) prompt = await readStdin();
  if (!prompt.trim()) throw usageError("no prompt given", 'lmx do "your prompt", or pipe the prompt into lmx do');
  const client = clientFor(options);
  const model = await chooseModel(client, options.model);
  if (model.reason !== "--model") io.err(io.errStyle.dim(`lmx: using ${model.id} (${model.reason})\n`));
  const messages: ChatMessage[] = [
    ...(options.system ? [{ role: "system" as const, content: options.system }] : []),
    { role: "user", content: prompt },
  ];
  const request = { model: model.id, messages, maxTokens: options.maxTokens, temperature: options.temperature };

  if (options.json) {
    const { body } = await withDefaultMaxTokens(request, (defaultCap) =>
      client.post<unknown>("/v1/chat/completions", "v1", requestBody(request, false, defaultCap), { timeoutMs: null }),
    );
    printJson(io, body);
    return EXIT.ok;
  }

  // Ctrl-C stops the generation: aborting the request frees the server's sequence at once
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once("SIGINT", onSigint);
  let endsWithNewline = true;
  try {
    const result = await streamChat(
      client,
      request,
      (piece) => {
        io.out(piece);
        endsWithNewline = piece.endsWith("\n");
      },
      controller.signal,
    );
    if (!endsWithNewline) io.out("\n");
    if (options.verbose) io.err(io.errStyle.dim(`${usageLine(model.id, result)}\n`));
    return EXIT.ok;
  } catch (error) {
    if (!endsWithNewline) io.out("\n");
    if (controller.signal.aborted) {
      io.err("lmx: interrupted\n");
      return EXIT.interrupted;
    }
    throw error;
  } finally {
    process.off("SIGINT", onSigint);
  }
}

export function registerDoCommand(program: Command): void {
  withConnection(
    addGenerationOptions(
      program.command("do").argument("[prompt...]", "the prompt (or pipe it on stdin)").description("one-shot chat: stream the answer to stdout"),
    ),
  )
    .option("--json", "no streaming: print the final chat.completion object as JSON")
    .action((prompt: string[], options: DoOptions) => run((io) => doPrompt(prompt, options, io)));
}
