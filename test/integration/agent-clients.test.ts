/**
 * The agent frameworks users actually run, unmodified, against real runners on both engines: the Vercel AI SDK
 * (ai + @ai-sdk/openai-compatible) and LangChain (@langchain/openai) — tool calls, streamed tool calls the client
 * reassembles, and structured output from zod schemas. The model is a random-weight Hermes-template model: what
 * the frameworks get is well-formed because the server's grammars make it so.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { ChatOpenAI } from "@langchain/openai";
import { generateObject, generateText, Output, streamText, tool } from "ai";
import { z } from "zod";
import { writeChatFamilyModel } from "../../src/gguf/chat-families.js";
import { NO_LLAMA_SERVER, testLlamaServerBinary } from "../helpers/llama-server.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const binary = testLlamaServerBinary();

const weatherInput = z.object({ city: z.enum(["Paris", "Tokyo", "Lima"]), days: z.number().int().min(1).max(7) });
const verdict = z.object({ answer: z.enum(["yes", "no"]), confidence: z.number().int().min(0).max(10) });

for (const engine of ["node-llama-cpp", "llama-server"] as const) {
  const skip = engine === "llama-server" && !binary ? NO_LLAMA_SERVER : false;
  describe(`agent frameworks on ${engine}`, { skip }, () => {
    let server: TestServer;
    let dir: string;

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), "lmx-agents-"));
      const file = path.join(dir, "hermes.gguf");
      await writeChatFamilyModel(file, "hermes", { seed: 3 });
      server = await startTestServer({
        backends: engine === "llama-server" ? { llama_server: binary!, cpu_fallback: false } : {},
        models: [{ id: "hermes", path: file, context_size: 2048, parallel: 2, threads: 1 }],
      });
    });
    after(async () => {
      await server?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const aiModel = () => createOpenAICompatible({ name: "lmx", baseURL: `${server.url}/v1`, supportsStructuredOutputs: true }).chatModel("hermes");
    const langchain = () =>
      new ChatOpenAI({
        model: "hermes",
        apiKey: "unused",
        configuration: { baseURL: `${server.url}/v1` },
        temperature: 0,
        maxTokens: 200,
        maxRetries: 0,
      });

    test("AI SDK generateText: a required tool call with typed, schema-valid input", async () => {
      const result = await generateText({
        model: aiModel(),
        prompt: "What is the weather in Paris for the next 3 days?",
        tools: { get_weather: tool({ description: "Weather forecast", inputSchema: weatherInput }) },
        toolChoice: "required",
        temperature: 0,
        maxOutputTokens: 200,
      });
      assert.ok(result.toolCalls.length >= 1, JSON.stringify(result.content));
      const call = result.toolCalls[0]!;
      assert.equal(call.toolName, "get_weather");
      weatherInput.parse(call.input);
    });

    test("AI SDK streamText: streamed tool-call deltas reassembled by the SDK", async () => {
      const result = streamText({
        model: aiModel(),
        prompt: "Weather in Tokyo?",
        tools: { get_weather: tool({ description: "Weather forecast", inputSchema: weatherInput }) },
        toolChoice: { type: "tool", toolName: "get_weather" },
        temperature: 0,
        maxOutputTokens: 200,
      });
      const calls = await result.toolCalls;
      assert.equal(calls.length, 1);
      weatherInput.parse(calls[0]!.input);
    });

    test("AI SDK generateObject and Output.object: zod-typed objects", async () => {
      const { object } = await generateObject({ model: aiModel(), schema: verdict, prompt: "Is water wet?", temperature: 0, maxOutputTokens: 200 });
      verdict.parse(object);
      const { output } = await generateText({
        model: aiModel(),
        output: Output.object({ schema: verdict }),
        prompt: "Is fire hot?",
        temperature: 0,
        maxOutputTokens: 200,
      });
      verdict.parse(output);
    });

    test("LangChain bindTools: a forced tool call with zod-valid args", async () => {
      const bound = langchain().bindTools([{ name: "get_weather", description: "Weather forecast", schema: weatherInput }], {
        tool_choice: "required",
      });
      const message = await bound.invoke("What is the weather in Lima?");
      assert.ok((message.tool_calls ?? []).length >= 1, JSON.stringify(message.content));
      assert.equal(message.tool_calls![0]!.name, "get_weather");
      weatherInput.parse(message.tool_calls![0]!.args);
    });

    test("LangChain withStructuredOutput: json_schema and function-calling methods", async () => {
      for (const method of ["jsonSchema", "functionCalling"] as const) {
        const structured = langchain().withStructuredOutput(verdict, { name: "verdict", method });
        verdict.parse(await structured.invoke("Is the sky green?"));
      }
    });
  });
}
