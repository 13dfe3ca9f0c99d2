/**
 * The web dashboard: /ui serves a page of plain ES modules and CSS (src/ui/static, read from the source tree next
 * to the compiled code, so neither a front-end build nor a copy step exists), uPlot from node_modules, and the
 * login that turns the admin key into a session cookie (src/http/ui-sessions.ts). Everything the page loads comes
 * from here: the Content-Security-Policy forbids any other origin, so a stray CDN link fails loudly in tests.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { LmxError } from "../../errors/codes.js";
import { parseRequest } from "../../api/openai/schemas.js";
import { sameKey } from "../auth.js";
import type { GatewayContext } from "../context.js";
import { SESSION_COOKIE, sessionAuthenticates, sessionId, sessionStoreFor } from "../ui-sessions.js";

/** dist/src/http/routes/ui.js and src/http/routes/ui.ts both sit four levels below the project root's src/ui/static. */
function staticRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const fromDist = path.resolve(here, "..", "..", "..", "..", "src", "ui", "static");
  const fromSource = path.resolve(here, "..", "..", "ui", "static");
  return here.includes(`${path.sep}dist${path.sep}`) ? fromDist : fromSource;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

/** Only files of the vendored library the page imports, by name: not a window onto node_modules. */
const require = createRequire(import.meta.url);
const VENDOR: Record<string, () => string> = {
  "uPlot.esm.js": () => require.resolve("uplot/dist/uPlot.esm.js"),
  "uPlot.min.css": () => path.join(path.dirname(require.resolve("uplot/dist/uPlot.esm.js")), "uPlot.min.css"),
};

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

const loginBody = z.strictObject({ key: z.string().min(1).max(1024) });

/** Does the client prefer an HTML page (a browser) over JSON (an API client)? */
export function prefersHtml(accept: string | undefined): boolean {
  if (!accept) return false;
  let html = 0;
  let json = 0;
  for (const part of accept.split(",")) {
    const [type, ...params] = part.trim().toLowerCase().split(";");
    const q = Number(
      params
        .map((p) => p.trim())
        .find((p) => p.startsWith("q="))
        ?.slice(2) ?? "1",
    );
    const weight = Number.isFinite(q) ? q : 0;
    if (type === "text/html" || type === "application/xhtml+xml") html = Math.max(html, weight);
    if (type === "application/json") json = Math.max(json, weight);
  }
  return html > 0 && html >= json;
}

export function registerUiRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const root = staticRoot();
  const sessions = sessionStoreFor(ctx);

  const send = async (reply: FastifyReply, file: string) => {
    const type = TYPES[path.extname(file)];
    if (!type) throw new LmxError("not_found", "no such dashboard file");
    let body: Buffer;
    try {
      body = await readFile(file);
    } catch {
      throw new LmxError("not_found", "no such dashboard file");
    }
    return reply
      .header("content-type", type)
      .header("content-security-policy", CSP)
      .header("x-content-type-options", "nosniff")
      .header("referrer-policy", "no-referrer")
      .header("cache-control", "no-cache")
      .send(body);
  };

  // browsers opening the server's address land on the dashboard; API clients keep the JSON 404 they always got
  app.get("/", async (request, reply) => {
    if (prefersHtml(request.headers.accept)) return reply.redirect("/ui/", 302);
    throw new LmxError("not_found", "no route GET /");
  });
  app.get("/ui", async (_request, reply) => reply.redirect("/ui/", 302));
  app.get("/ui/", async (_request, reply) => send(reply, path.join(root, "index.html")));
  app.get("/ui/static/*", async (request, reply) => {
    const wanted = (request.params as { "*": string })["*"];
    const file = path.resolve(root, wanted);
    // confined to the static folder: no ../ and no absolute path gets out
    if (!file.startsWith(root + path.sep)) throw new LmxError("not_found", "no such dashboard file");
    return send(reply, file);
  });
  app.get("/ui/vendor/:name", async (request, reply) => {
    const resolve = VENDOR[(request.params as { name: string }).name];
    if (!resolve) throw new LmxError("not_found", "no such dashboard file");
    return send(reply, resolve());
  });

  // what the page needs to know before it draws: must it ask for the key, and is this browser logged in?
  app.get("/ui/session", async (request) => {
    const required = ctx.config.admin_key !== null;
    return {
      auth_required: required,
      authenticated: !required || sessions.valid(sessionId(request)),
      api_key_required: ctx.config.api_keys.length > 0,
    };
  });

  app.post("/ui/login", async (request: FastifyRequest, reply) => {
    const { key } = parseRequest(loginBody, request.body);
    const adminKey = ctx.config.admin_key;
    if (!adminKey) return reply.code(204).send();
    if (!sameKey(key, adminKey)) {
      ctx.log.warn({ ip: request.ip }, "dashboard login with a wrong admin key");
      throw new LmxError("unauthorized", "that is not the admin key: use the value of admin_key (or LMX_ADMIN_KEY) this server was started with");
    }
    const id = sessions.create();
    const secure = request.protocol === "https" ? "; Secure" : "";
    return reply
      .code(204)
      .header("set-cookie", `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${sessions.ttlSec}${secure}`)
      .send();
  });

  app.post("/ui/logout", async (request, reply) => {
    // only the page itself may log its operator out (the same rule as any cookie-authenticated change)
    if (sessionAuthenticates(sessions, request)) sessions.destroy(sessionId(request));
    return reply.code(204).header("set-cookie", `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`).send();
  });
}
