/** Turns anything thrown inside a route (our errors, Fastify's, real bugs) into an OpenAI-shaped reply. */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { LmxError } from "../errors/codes.js";
import { dialectOf, errorFor } from "../errors/dialects.js";

export function asLmxError(error: unknown): LmxError {
  if (error instanceof LmxError) return error;
  const fastifyError = error as Partial<FastifyError> | undefined;
  switch (fastifyError?.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new LmxError("request_too_large", "the request body is larger than max_body_bytes allows");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new LmxError(
        "unsupported_media_type",
        "send the body as JSON with Content-Type: application/json (curl: -H 'content-type: application/json')",
      );
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new LmxError("invalid_json", "the request body is empty; send a JSON object");
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new LmxError("invalid_json", `the request body is not valid JSON: ${fastifyError.message ?? ""}`);
    default:
      break;
  }
  if (error instanceof SyntaxError) return new LmxError("invalid_json", `the request body is not valid JSON: ${error.message}`);
  const status = fastifyError?.statusCode;
  if (typeof status === "number" && status >= 400 && status < 500) {
    if (status === 413) return new LmxError("request_too_large", fastifyError?.message ?? "request too large");
    if (status === 415) return new LmxError("unsupported_media_type", fastifyError?.message ?? "unsupported media type");
    return new LmxError("invalid_request", fastifyError?.message ?? "invalid request");
  }
  return new LmxError("internal_error", "internal server error", { cause: error });
}

export function sendError(request: FastifyRequest, reply: FastifyReply, error: unknown): FastifyReply {
  const lmx = asLmxError(error);
  if (lmx.code === "internal_error") request.log.error({ err: lmx.cause ?? error }, "unhandled error");
  else if (lmx.status >= 500) request.log.warn({ code: lmx.code, details: lmx.details }, lmx.message);
  // answered in the caller's dialect: the path says which (src/errors/dialects.ts)
  const { status, headers, body } = errorFor(dialectOf(request.url), lmx);
  return reply.code(status).headers(headers).send(body);
}
