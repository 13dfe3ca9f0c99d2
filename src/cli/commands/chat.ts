/**
 * `lmx chat`: an interactive conversation. Every turn sends the whole history, so the model sees what was said;
 * answers stream as they are generated. /exit or Ctrl-D ends, Ctrl-C stops the answer being written.
 */
import readline from "node:readline";
import type { Command } from "commander";
import type { ChatMessage } from "../api-types.js";
import { streamChat, usageLine } from "../chat-stream.js";
import { clientFor, reportError, run, withConnection, type Io } from "../command-kit.js";
import { chooseModel } from "../default-model.js";
import { CliError, EXIT } from "../exit.js";
import { addGenerationOptions, type GenerationOptions } from "./do.js";

const HELP = "/exit (or Ctrl-D) ends · /reset forgets the conversation · /help · Ctrl-C stops an answer";

async function chat(options: GenerationOptions, io: Io): Promise<number> {
  const client = clientFor(options);
  const model = await chooseModel(client, options.model);
  const interactive = process.stdin.isTTY === true;
  io.err(io.errStyle.dim(`chatting with ${model.id}${model.reason === "--model" ? "" : ` (${model.reason})`} — ${HELP}\n`));
  const system: ChatMessage[] = options.system ? [{ role: "system", content: options.system }] : [];
  let history: ChatMessage[] = [...system];

  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: interactive, historySize: 200 });
  rl.setPrompt(interactive ? io.style.bold(io.style.cyan("> ")) : "");

  return new Promise<number>((resolve) => {
    const queue: string[] = [];
    let busy = false;
    let closed = false;
    let exitCode: number = EXIT.ok;
    let current: AbortController | null = null;

    const turn = async (line: string): Promise<void> => {
      const text = line.trim();
      if (!text) return;
      if (text === "/exit" || text === "/quit") {
        queue.length = 0;
        rl.close();
        return;
      }
      if (text === "/reset") {
        history = [...system];
        io.err(io.errStyle.dim("(conversation forgotten)\n"));
        return;
      }
      if (text === "/help") {
        io.err(`${HELP}\n`);
        return;
      }
      history.push({ role: "user", content: line });
      current = new AbortController();
      let answer = "";
      try {
        const result = await streamChat(
          client,
          { model: model.id, messages: history, maxTokens: options.maxTokens, temperature: options.temperature },
          (piece) => {
            answer += piece;
            io.out(piece);
          },
          current.signal,
        );
        io.out(answer.endsWith("\n") ? "" : "\n");
        history.push({ role: "assistant", content: result.text });
        if (options.verbose) io.err(io.errStyle.dim(`${usageLine(model.id, result)}\n`));
      } catch (error) {
        if (answer && !answer.endsWith("\n")) io.out("\n");
        if (current.signal.aborted) {
          // what was shown stays in the conversation, so the next turn can refer to it
          if (answer) history.push({ role: "assistant", content: answer });
          else history.pop();
          io.err(io.errStyle.dim("(stopped)\n"));
          return;
        }
        history.pop();
        const code = reportError(error, io);
        if (error instanceof CliError && error.code === "context_length_exceeded")
          io.err("  the conversation no longer fits the model's context: /reset starts over\n");
        // without a server or with a refused key no later turn can work: end with that code
        if (error instanceof CliError && (error.exitCode === EXIT.unreachable || error.exitCode === EXIT.auth)) {
          exitCode = code;
          queue.length = 0;
          rl.close();
        }
      } finally {
        current = null;
      }
    };

    const next = async (): Promise<void> => {
      if (busy) return;
      const line = queue.shift();
      if (line === undefined) {
        if (closed) resolve(exitCode);
        else if (interactive) rl.prompt();
        return;
      }
      busy = true;
      await turn(line);
      busy = false;
      void next();
    };

    const interrupt = () => {
      if (current) current.abort();
      else rl.close();
    };
    rl.on("line", (line) => {
      queue.push(line);
      void next();
    });
    rl.on("close", () => {
      closed = true;
      if (interactive && !busy) io.out("\n");
      if (!busy && queue.length === 0) resolve(exitCode);
    });
    rl.on("SIGINT", interrupt);
    process.on("SIGINT", interrupt);
    if (interactive) rl.prompt();
  });
}

export function registerChatCommand(program: Command): void {
  withConnection(
    addGenerationOptions(program.command("chat").description("interactive chat that keeps the conversation; /exit or Ctrl-D ends")),
  ).action((options: GenerationOptions) => run((io) => chat(options, io)));
}
