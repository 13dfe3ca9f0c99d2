/**
 * The metrics of one generation request, fed by the route (queue wait, outcome) and the proxy (token arrivals,
 * usage). Label lookups are done once per request, not once per token.
 */
import type { Histogram } from "prom-client";
import type { LmxMetrics } from "./metrics.js";
import type { TokenUsage } from "./sse.js";

type ModelHistogram = ReturnType<Histogram<"model">["labels"]>;

export class RequestRecorder {
  /** The resolved model id; "" until the model is known (a request refused before that). */
  model = "";
  private firstTokenAt: number | null = null;
  private lastTokenAt = 0;
  private interToken: ModelHistogram | null = null;
  private finished = false;

  constructor(
    private readonly metrics: LmxMetrics,
    /** Arrival at the gateway, on performance.now()'s clock. */
    readonly arrivalMs: number,
  ) {}

  /** Time spent waiting in the admission queue before a sequence was granted. */
  queued(waitMs: number): void {
    this.metrics.queueTime.observe({ model: this.model }, waitMs / 1000);
  }

  /**
   * `count` generated tokens reached the gateway at `nowMs` (several when they came in one chunk). The first
   * one sets the time to first token; every later one is an inter-token gap, and tokens that arrived together
   * share the gap evenly, so the gaps of a stream add up to its generation time.
   */
  tokens(count: number, nowMs: number): void {
    if (count <= 0) return;
    if (this.firstTokenAt === null) {
      this.firstOutput(nowMs);
      this.interToken = this.metrics.interTokenLatency.labels({ model: this.model });
      for (let i = 1; i < count; i++) this.interToken.observe(0);
    } else {
      const gap = (nowMs - this.lastTokenAt) / 1000 / count;
      for (let i = 0; i < count; i++) this.interToken!.observe(gap);
    }
    this.lastTokenAt = nowMs;
  }

  /** The stream's final event arrived: a stream that generated nothing still had its first (and last) output now. */
  streamFinished(nowMs: number): void {
    if (this.firstTokenAt === null) this.firstOutput(nowMs);
  }

  private firstOutput(nowMs: number): void {
    this.firstTokenAt = nowMs;
    this.metrics.timeToFirstToken.observe({ model: this.model }, (nowMs - this.arrivalMs) / 1000);
  }

  usage(usage: TokenUsage): void {
    const labels = { model: this.model };
    this.metrics.promptTokens.inc(labels, usage.promptTokens);
    this.metrics.generationTokens.inc(labels, usage.completionTokens);
    this.metrics.prefixCacheHitTokens.inc(labels, usage.cachedTokens);
  }

  get done(): boolean {
    return this.finished;
  }

  /**
   * Counts the request once, with the status its outcome maps to and its error code ("" for success).
   * Only answered requests have an end-to-end latency.
   */
  finish(status: number, code: string, nowMs: number): void {
    if (this.finished) return;
    this.finished = true;
    this.metrics.requests.inc({ model: this.model, status: String(status), code });
    if (status < 400) this.metrics.e2eLatency.observe({ model: this.model }, (nowMs - this.arrivalMs) / 1000);
  }
}
