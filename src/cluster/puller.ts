/*
 * Pulls the images this server lacks from peers that hold them: a few at a
 * time, origins before the images built on them, oldest first. Each file
 * comes from a peer's GET /images/:uuid/file straight into the import
 * transaction, which checks its size and sha1 against the manifest from the
 * index before anything is published; the manifest keeps its uuid, owner,
 * published_at and state. A peer that fails, stalls or dies mid-transfer
 * costs the attempt: the next one goes to the holder that failed least
 * (live servers first), after a backoff that grows with each failure
 * (with jitter). Nothing of a failed attempt stays behind.
 */
import http from 'node:http';
import https from 'node:https';
import type { Logger } from '../log.js';
import { ImageUuidAlreadyExists } from '../errors.js';
import type { Compression, JsonObject, Manifest } from '../manifest/types.js';
import { withHistory, type Sidecar } from '../store/sidecar.js';
import type { ImageStore } from '../store/store.js';
import type { ImageWriter } from '../store/writer.js';

export interface IndexEntry {
  manifest: Manifest;
  legacy: Record<string, unknown> | null;
  /** Server id that wrote the entry last. */
  by: string;
  modRev: string;
  hash: string;
}

export interface Holder {
  id: string;
  url: string;
  live: boolean;
}

export interface PullerOptions {
  store: ImageStore;
  writer: ImageWriter;
  log: Logger;
  concurrency: number;
  /** Basic credentials for peers, if they need any. */
  authorization?: string;
  userAgent: string;
  holdersOf(uuid: string): Holder[];
  /** Whether `uuid` is in the index (an origin that is not will never come). */
  indexed(uuid: string): boolean;
  /** Called after each pull, whether it worked or not. */
  pulled(uuid: string, ok: boolean): void;
}

interface Want {
  entry: IndexEntry;
  firstSeen: number;
  attempts: number;
  nextAt: number;
  inFlight: boolean;
  /** Failures per holder id: the next try goes to the holder that failed least. */
  failures: Map<string, number>;
}

/** No byte from a peer for this long and the transfer counts as failed. */
const STALL_MS = 30_000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;

export class Puller {
  private readonly wanted = new Map<string, Want>();
  private readonly requests = new Set<http.ClientRequest>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private inFlight = 0;
  readonly counts = { succeeded: 0, failed: 0 };

  constructor(private readonly opts: PullerOptions) {}

  /** Replaces the set of images to pull; pulls already running go on. */
  plan(entries: Map<string, IndexEntry>): void {
    const now = Date.now();
    for (const [uuid, want] of this.wanted) {
      if (!entries.has(uuid) && !want.inFlight) this.wanted.delete(uuid);
    }
    for (const [uuid, entry] of entries) {
      const want = this.wanted.get(uuid);
      if (want) want.entry = entry;
      else this.wanted.set(uuid, { entry, firstSeen: now, attempts: 0, nextAt: now, inFlight: false, failures: new Map() });
    }
    this.pump();
  }

  /** Images waiting or being pulled. */
  pending(): number {
    return this.wanted.size;
  }

  pulling(): number {
    return this.inFlight;
  }

  isPulling(uuid: string): boolean {
    return this.wanted.get(uuid)?.inFlight ?? false;
  }

  /** When the longest-waiting image was first wanted, or undefined when none waits. */
  oldestWant(): number | undefined {
    let oldest: number | undefined;
    for (const w of this.wanted.values()) oldest = Math.min(oldest ?? w.firstSeen, w.firstSeen);
    return oldest;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const req of this.requests) req.destroy(new Error('server stopping'));
  }

  private pump(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const now = Date.now();
    const ready = [...this.wanted.entries()]
      .filter(([uuid, w]) => !w.inFlight && w.nextAt <= now && this.originReady(w.entry) && this.candidates(uuid, w).length > 0)
      .sort(([, a], [, b]) => publishedMs(a.entry) - publishedMs(b.entry) || (a.entry.manifest.uuid < b.entry.manifest.uuid ? -1 : 1));
    for (const [uuid, want] of ready) {
      if (this.inFlight >= this.opts.concurrency) break;
      void this.pull(uuid, want);
    }
    const waiting = [...this.wanted.values()].filter((w) => !w.inFlight && w.nextAt > now);
    if (waiting.length > 0) {
      const next = Math.min(...waiting.map((w) => w.nextAt));
      this.timer = setTimeout(() => this.pump(), Math.max(10, next - now)).unref();
    }
  }

  /** An image waits for its origin, unless the origin will never come. */
  private originReady(entry: IndexEntry): boolean {
    const origin = entry.manifest.origin;
    return !origin || this.opts.store.get(origin) !== undefined || !this.opts.indexed(origin);
  }

  /** Holders in the order to try them: those that failed least, then live servers, then by id. */
  private candidates(uuid: string, want: Want): Holder[] {
    const failed = (h: Holder) => want.failures.get(h.id) ?? 0;
    return this.opts.holdersOf(uuid)
      .sort((a, b) => failed(a) - failed(b) || Number(b.live) - Number(a.live) || (a.id < b.id ? -1 : 1));
  }

  private async pull(uuid: string, want: Want): Promise<void> {
    const holder = this.candidates(uuid, want)[0]!;
    want.inFlight = true;
    this.inFlight++;
    const { entry } = want;
    const log = this.opts.log.child({ uuid, from: holder.url, peer: holder.id });
    const started = Date.now();
    log.info({ name: entry.manifest.name, version: entry.manifest.version, size: entry.manifest.files[0]?.size, attempt: want.attempts + 1 },
      'pulling image from a peer');
    let ok = false;
    try {
      await this.fetchInto(entry, holder);
      ok = true;
      this.counts.succeeded++;
      log.info({ ms: Date.now() - started }, 'pulled image from a peer');
    } catch (err) {
      if (this.opts.store.get(uuid) !== undefined || isAlreadyThere(err)) {
        ok = true;
      } else {
        this.counts.failed++;
        want.attempts++;
        want.failures.set(holder.id, (want.failures.get(holder.id) ?? 0) + 1);
        const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (want.attempts - 1));
        want.nextAt = Date.now() + delay / 2 + Math.random() * (delay / 2);
        if (!this.stopped) log.warn({ err: describe(err), attempts: want.attempts, retry_ms: Math.round(want.nextAt - Date.now()) }, 'pull failed; will retry');
      }
    } finally {
      want.inFlight = false;
      this.inFlight--;
    }
    if (ok && this.wanted.get(uuid) === want) this.wanted.delete(uuid);
    if (this.stopped) return;
    this.opts.pulled(uuid, ok);
    this.pump();
  }

  private async fetchInto(entry: IndexEntry, holder: Holder): Promise<void> {
    const manifest = entry.manifest;
    const file = manifest.files[0];
    if (!file || manifest.files.length !== 1) throw new Error(`the index lists ${manifest.files.length} files for this image; one is supported`);
    const res = await this.get(`${holder.url}/images/${manifest.uuid}/file`);
    try {
      if (res.statusCode !== 200) throw new Error(`GET file: HTTP ${res.statusCode}`);
      const sidecar: Sidecar = withHistory({ source: { via: 'cluster', from: holder.url, peer: holder.id } }, 'pulled', `cluster:${holder.id}`);
      if (entry.legacy) sidecar.legacy = entry.legacy;
      await this.opts.writer.create(structuredClone(manifest) as unknown as JsonObject, sidecar, {
        source: res,
        compression: file.compression as Compression,
        expect: { sha1: file.sha1, size: file.size, maxBytes: file.size },
      });
    } finally {
      res.destroy();
    }
  }

  private get(url: string): Promise<http.IncomingMessage> {
    const headers: Record<string, string> = { 'user-agent': this.opts.userAgent, accept: '*/*' };
    if (this.opts.authorization) headers.authorization = this.opts.authorization;
    const client = url.startsWith('https:') ? https : http;
    return new Promise((resolve, reject) => {
      const req = client.get(url, { headers, agent: false }, (res) => resolve(res));
      this.requests.add(req);
      req.setTimeout(STALL_MS, () => req.destroy(new Error(`no data from the peer for ${STALL_MS / 1000} s`)));
      req.on('error', reject);
      req.on('close', () => this.requests.delete(req));
    });
  }
}

function publishedMs(entry: IndexEntry): number {
  return entry.manifest.published_at ? Date.parse(entry.manifest.published_at) || 0 : 0;
}

function isAlreadyThere(err: unknown): boolean {
  return (err as { restCode?: string })?.restCode === ImageUuidAlreadyExists('x').restCode;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
