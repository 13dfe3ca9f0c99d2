/**
 * One stream of what happens in the server, for GET /admin/events (and later the dashboard and
 * `lmx status --watch`): model lifecycle moves as they happen, queue depth (coalesced: it changes with every
 * request), and download progress (sampled while someone listens and a download runs).
 */
import { EventEmitter } from "node:events";
import type { ModelTransition } from "../scheduler/lifecycle.js";

export type LmxEvent =
  | ({ type: "model" } & ModelTransition)
  | { type: "queue"; running: number; waiting: number; at: string }
  | {
      type: "download";
      id: string;
      repo: string;
      status: string;
      bytes_done: number;
      bytes_total: number;
      bytes_per_sec: number;
      at: string;
    };

export interface SequencedEvent {
  seq: number;
  event: LmxEvent;
}

export interface DownloadSource {
  list(): Array<{ snapshot(): { id: string; repo: string; status: string; bytesDone: number; bytesTotal: number; bytesPerSec: number } }>;
}

const QUEUE_COALESCE_MS = 100;
const DOWNLOAD_SAMPLE_MS = 500;

export class EventHub {
  private readonly emitter = new EventEmitter();
  private seq = 0;
  private pendingQueue: { running: number; waiting: number } | null = null;
  private queueTimer: NodeJS.Timeout | null = null;
  private downloadTimer: NodeJS.Timeout | null = null;
  private readonly lastDownload = new Map<string, string>();

  constructor(private readonly downloads: DownloadSource | null = null) {
    // every SSE client is a listener; a dashboard with many tabs must not trip Node's leak warning
    this.emitter.setMaxListeners(0);
  }

  publish(event: LmxEvent): void {
    this.emitter.emit("event", { seq: ++this.seq, event } satisfies SequencedEvent);
  }

  modelMoved(transition: ModelTransition): void {
    this.publish({ type: "model", ...transition });
  }

  /** Many changes in a burst become one event carrying the latest numbers. */
  queueChanged(depth: { running: number; waiting: number }): void {
    this.pendingQueue = depth;
    if (this.queueTimer || this.listeners() === 0) return;
    this.queueTimer = setTimeout(() => {
      this.queueTimer = null;
      const depthNow = this.pendingQueue;
      this.pendingQueue = null;
      if (depthNow) this.publish({ type: "queue", ...depthNow, at: new Date().toISOString() });
    }, QUEUE_COALESCE_MS);
    this.queueTimer.unref();
  }

  subscribe(listener: (event: SequencedEvent) => void): () => void {
    this.emitter.on("event", listener);
    this.sampleDownloads();
    return () => {
      this.emitter.off("event", listener);
      if (this.listeners() === 0 && this.downloadTimer) {
        clearInterval(this.downloadTimer);
        this.downloadTimer = null;
      }
    };
  }

  /** Ends every subscriber's stream (shutdown must not wait for SSE clients that never hang up). */
  close(): void {
    if (this.queueTimer) clearTimeout(this.queueTimer);
    if (this.downloadTimer) clearInterval(this.downloadTimer);
    this.emitter.emit("close");
    this.emitter.removeAllListeners();
  }

  onClose(listener: () => void): () => void {
    this.emitter.once("close", listener);
    return () => this.emitter.off("close", listener);
  }

  private listeners(): number {
    return this.emitter.listenerCount("event");
  }

  private sampleDownloads(): void {
    if (!this.downloads || this.downloadTimer) return;
    this.downloadTimer = setInterval(() => {
      for (const job of this.downloads!.list()) {
        const s = job.snapshot();
        const fingerprint = `${s.status}:${s.bytesDone}:${s.bytesTotal}`;
        if (this.lastDownload.get(s.id) === fingerprint) continue;
        this.lastDownload.set(s.id, fingerprint);
        this.publish({
          type: "download",
          id: s.id,
          repo: s.repo,
          status: s.status,
          bytes_done: s.bytesDone,
          bytes_total: s.bytesTotal,
          bytes_per_sec: s.bytesPerSec,
          at: new Date().toISOString(),
        });
      }
    }, DOWNLOAD_SAMPLE_MS);
    this.downloadTimer.unref();
  }
}
