/**
 * The one error type downloads fail with. Its codes are rows of the central error table (src/errors/codes.ts:
 * status, type, fault, retryable), so a download error maps onto an HTTP answer like any other.
 */
import type { ErrorCode } from "../../errors/codes.js";

export type DownloadErrorCode = Extract<
  ErrorCode,
  "download_not_found" | "download_checksum_mismatch" | "download_failed" | "download_in_progress" | "insufficient_disk" | "download_unauthorized"
>;

export class DownloadError extends Error {
  readonly code: DownloadErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: DownloadErrorCode, message: string, options: { details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DownloadError";
    this.code = code;
    this.details = options.details;
  }
}

export function isDownloadError(value: unknown): value is DownloadError {
  return value instanceof DownloadError;
}
