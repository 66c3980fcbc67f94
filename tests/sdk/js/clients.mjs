// The official JavaScript SDKs, called the way their docs show, against one base URL.
// Reads a JSON list of calls on stdin ({id, client, fixture, model, base, headers, ...}), makes them
// one after the other and prints one JSON list of outcomes ({id, result | error, warnings}).
// tests/sdk/test_js_sdks.py runs it once per target (direct, envoy, worker) and compares.
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { GoogleGenAI } from "@google/genai";
import { generateText, streamText, jsonSchema, tool } from "ai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { createOpenRouter } from "@openrouter/ai-sdk-provider";

const KEY = "sk-test-not-a-real-key";
const PROMPT = "Say hello.";

// Every warning an SDK could show a user: the AI SDK's warning hook, process warnings, console.
let warnings = [];
globalThis.AI_SDK_LOG_WARNINGS = ({ warnings: list }) => {
  for (const w of list) warnings.push(`ai-sdk: ${JSON.stringify(w)}`);
};
process.on("warning", (w) => warnings.push(`process: ${w.name}: ${w.message}`));
for (const level of ["warn", "error"]) {
  console[level] = (...args) => warnings.push(`console.${level}: ${args.map(String).join(" ")}`);
}

const plain = (v) => JSON.parse(JSON.stringify(v ?? null));

const clients = {
  // -- openai --------------------------------------------------------------------------------
  async "openai-chat-json"(c) {
    const r = await openai(c).chat.completions.create({ model: c.model, messages: user() });
    const msg = r.choices[0].message;
    return {
      text: msg.content,
      tool_calls: (msg.tool_calls ?? []).map((t) => [t.function.name, t.function.arguments]),
      usage: r.usage,
      answer: r,
    };
  },
  async "openai-chat-stream"(c) {
    const stream = await openai(c).chat.completions.create({
      model: c.model, messages: user(), stream: true, stream_options: { include_usage: true },
    });
    let text = "", usage = null;
    const tools = [], chunks = [];
    for await (const chunk of stream) {
      chunks.push(chunk);
      usage = chunk.usage ?? usage;
      for (const choice of chunk.choices) {
        text += choice.delta.content ?? "";
        for (const t of choice.delta.tool_calls ?? []) {
          const [name, args] = tools[t.index] ?? ["", ""];
          tools[t.index] = [name + (t.function?.name ?? ""), args + (t.function?.arguments ?? "")];
        }
      }
    }
    return { text, tool_calls: tools, usage, answer: chunks };
  },
  async "openai-responses-json"(c) {
    const r = await openai(c).responses.create({ model: c.model, input: PROMPT });
    return responseSummary(r, r);
  },
  async "openai-responses-stream"(c) {
    const stream = openai(c).responses.stream({ model: c.model, input: PROMPT });
    const events = [];
    for await (const event of stream) events.push(event.type);
    const r = await stream.finalResponse();
    return responseSummary(r, [events, r]);
  },
  // -- @anthropic-ai/sdk ---------------------------------------------------------------------
  async "anthropic-json"(c) {
    return messageSummary(await anthropic(c).messages.create(anthropicRequest(c)));
  },
  async "anthropic-stream"(c) {
    const stream = anthropic(c).messages.stream(anthropicRequest(c));
    const events = [];
    for await (const event of stream) events.push(event.type);
    const out = messageSummary(await stream.finalMessage());
    out.answer = [events, out.answer];
    return out;
  },
  // -- @google/genai -------------------------------------------------------------------------
  async "genai-json"(c) {
    const r = await genai(c).models.generateContent({ model: c.model, contents: PROMPT });
    return { ...genaiParts([r]), usage: r.usageMetadata, answer: withoutHttp(r) };
  },
  async "genai-stream"(c) {
    const chunks = [];
    for await (const chunk of await genai(c).models.generateContentStream({ model: c.model, contents: PROMPT })) {
      chunks.push(chunk);
    }
    const usage = [...chunks].reverse().find((ch) => ch.usageMetadata)?.usageMetadata ?? null;
    return { ...genaiParts(chunks), usage, answer: chunks.map(withoutHttp) };
  },
  // -- Vercel AI SDK -------------------------------------------------------------------------
  async "ai-openai-compatible-json"(c) {
    return aiResult(await generateText(aiCall(c, compatible(c))));
  },
  async "ai-openai-compatible-stream"(c) {
    return aiStream(streamText(aiCall(c, compatible(c))));
  },
  async "ai-openrouter-json"(c) {
    return aiResult(await generateText(aiCall(c, openrouter(c))));
  },
  async "ai-openrouter-stream"(c) {
    return aiStream(streamText(aiCall(c, openrouter(c))));
  },
};

const user = () => [{ role: "user", content: PROMPT }];
const openai = (c) =>
  new OpenAI({ baseURL: `${c.base}/v1`, apiKey: KEY, maxRetries: 0, timeout: 30_000, defaultHeaders: c.headers });
const anthropic = (c) =>
  new Anthropic({ baseURL: c.base, apiKey: KEY, maxRetries: 0, timeout: 30_000, defaultHeaders: c.headers });
const genai = (c) =>
  new GoogleGenAI({
    apiKey: KEY,
    httpOptions: { baseUrl: c.base, apiVersion: c.api_version, headers: c.headers, timeout: 30_000 },
  });
const compatible = (c) =>
  createOpenAICompatible({
    name: "gateway", baseURL: `${c.base}/v1`, apiKey: KEY, headers: c.headers, includeUsage: true,
  })(c.model);
const openrouter = (c) =>
  createOpenRouter({ baseURL: `${c.base}/api/v1`, apiKey: KEY, headers: c.headers })(c.model, {
    usage: { include: true },
  });

function responseSummary(r, answer) {
  return {
    text: r.output_text,
    tool_calls: r.output.filter((o) => o.type === "function_call").map((o) => [o.name, o.arguments]),
    usage: r.usage,
    answer,
  };
}

function anthropicRequest(c) {
  return {
    model: c.model, max_tokens: 4096, messages: user(), thinking: { type: "enabled", budget_tokens: 2048 },
  };
}

function messageSummary(m) {
  return {
    text: m.content.filter((b) => b.type === "text").map((b) => b.text).join(""),
    thinking: m.content.filter((b) => b.type === "thinking").map((b) => b.thinking).join(""),
    tool_calls: m.content.filter((b) => b.type.endsWith("tool_use")).map((b) => [b.name, b.input]),
    usage: m.usage,
    answer: m,
  };
}

function genaiParts(responses) {
  let text = "";
  const calls = [];
  for (const r of responses) {
    for (const cand of r.candidates ?? []) {
      for (const part of cand.content?.parts ?? []) {
        if (part.text && !part.thought) text += part.text;
        if (part.functionCall) calls.push([part.functionCall.name, part.functionCall.args ?? null]);
      }
    }
  }
  return { text, tool_calls: calls };
}

// `sdkHttpResponse` holds the transport's headers (content-length, date): not the answer.
function withoutHttp(r) {
  const { sdkHttpResponse, ...rest } = plain(r);
  return rest;
}

function aiCall(c, model) {
  const tools = Object.fromEntries(
    (c.tools ?? []).map((name) => [name, tool({ description: name, inputSchema: jsonSchema({ type: "object" }) })]),
  );
  return { model, prompt: PROMPT, maxRetries: 0, ...(c.tools ? { tools } : {}) };
}

function aiResult(r) {
  return {
    text: r.text,
    reasoning: r.reasoningText ?? null,
    tool_calls: r.toolCalls.map((t) => [t.toolName, t.input]),
    usage: r.usage,
    finish_reason: r.finishReason,
    answer: r.response?.body ?? null,
  };
}

async function aiStream(result) {
  const parts = [];
  for await (const part of result.fullStream) {
    if (part.type === "error") throw part.error;
    parts.push(part.type);
  }
  return {
    text: await result.text,
    reasoning: (await result.reasoningText) ?? null,
    tool_calls: (await result.toolCalls).map((t) => [t.toolName, t.input]),
    usage: await result.usage,
    finish_reason: await result.finishReason,
    answer: parts,
  };
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const outcomes = [];
for (const c of JSON.parse(input)) {
  warnings = [];
  const outcome = { id: c.id, request_id: c.headers["x-request-id"] };
  try {
    outcome.result = plain(await clients[c.client](c));
  } catch (err) {
    outcome.error = `${err?.name ?? "Error"}: ${String(err?.message ?? err).slice(0, 2000)}`;
  }
  await new Promise((r) => setTimeout(r, 20)); // let late warnings land on this call
  outcome.warnings = warnings;
  outcomes.push(outcome);
}
process.stdout.write(JSON.stringify(outcomes) + "\n");
