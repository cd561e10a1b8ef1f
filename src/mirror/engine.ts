/*
 * The mirror engine: one upstream, one run at a time. A run lists the
 * upstream, picks the active images that pass the filters, resolves each
 * one's origin chain (origins come along whatever their state or the
 * filters, and are copied first), and copies what serve_dir lacks:
 *
 *   download into serve_dir/.mirror/ (resumable, verified: download.ts)
 *   → ImageWriter.create, the import transaction every way in shares,
 *     which checks size and sha1 once more while staging the copy
 *   → the partial is removed.
 *
 * Manifests keep the upstream's uuid, published_at, owner and the rest;
 * an image picked by the filters is published active, an origin keeps its
 * upstream state (imgadm fetches origins whatever their state). server.json
 * records where the copy came from: source {via: "mirror", url}.
 *
 * An image already in serve_dir is never downloaded again, and one deleted
 * here (it has a tombstone) is not brought back. Each network operation is
 * retried with backoff; the upstream's circuit breaker stops the run (and
 * later runs, for its cool-down) when failures keep coming.
 */
import { createReadStream, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import type { Logger } from '../log.js';
import { ApiError } from '../errors.js';
import { normalizeManifest } from '../manifest/normalize.js';
import { STATES, ZERO_UUID, isObject, type JsonObject } from '../manifest/types.js';
import { withImageLock } from '../store/locks.js';
import { withHistory, type Sidecar } from '../store/sidecar.js';
import type { ImageStore } from '../store/store.js';
import type { ImageWriter } from '../store/writer.js';
import { BadManifest, listUpstream, matches, toUpstreamImage, type Filters, type UpstreamImage } from './catalog.js';
import { download, mirrorDir, removeOldPartials } from './download.js';
import { CircuitBreaker, DEFAULT_BREAKER, DEFAULT_RETRY, withRetry, type BreakerPolicy, type RetryPolicy } from './retry.js';
import { Upstream, UpstreamError, type UpstreamType } from './upstream.js';

export interface MirrorSpec {
  url: string;
  type: UpstreamType;
  filters?: Filters;
  caFile?: string;
}

export interface EngineOptions {
  store: ImageStore;
  writer: ImageWriter;
  log: Logger;
  retry?: RetryPolicy;
  breaker?: BreakerPolicy;
  /** Images copied at the same time. */
  concurrency?: number;
  idleTimeoutMs?: number;
  /** How often a long download logs its progress. */
  progressLogMs?: number;
}

export type Role = 'selected' | 'origin';

export interface PlanEntry {
  image: UpstreamImage;
  role: Role;
  /** The planned images that have this one as their origin. */
  originOf: string[];
}

export type Outcome = 'copied' | 'present' | 'deleted' | 'failed' | 'planned';

export interface ItemResult {
  uuid: string;
  name?: string;
  version?: string;
  role?: Role;
  outcome: Outcome;
  error?: string;
  /** Bytes fetched over the network in this run. */
  bytes?: number;
  resumedFrom?: number;
  seconds?: number;
}

export interface MirrorReport {
  upstream: string;
  type: UpstreamType;
  dryRun: boolean;
  startedAt: string;
  seconds: number;
  /** Set when the run did not reach the upstream because its breaker is open. */
  pausedUntil?: string;
  /** Set when the listing itself failed. */
  error?: string;
  listed: number;
  selected: number;
  /** Copies planned, origins first (all of them in a dry run, else what was tried). */
  plan: PlanEntry[];
  results: ItemResult[];
}

export interface MirrorListener {
  planned?(plan: readonly PlanEntry[]): void;
  started?(entry: PlanEntry): void;
  bytes?(entry: PlanEntry, n: number): void;
  retrying?(what: string, err: Error, delayMs: number): void;
  finished?(result: ItemResult, entry?: PlanEntry): void;
}

export interface RunOptions {
  dryRun?: boolean;
  signal?: AbortSignal;
  listener?: MirrorListener;
}

export const count = (report: MirrorReport, outcome: Outcome) => report.results.filter((r) => r.outcome === outcome).length;
export const failed = (report: MirrorReport) => report.error !== undefined || report.results.some((r) => r.outcome === 'failed');

/** The sdc-imgapi cap on origin chains. */
const MAX_CHAIN = 100;
const PARTIAL_TTL_MS = 7 * 24 * 3_600_000;

export class Mirror {
  readonly upstream: Upstream;
  readonly breaker: CircuitBreaker;
  private readonly filters: Filters;
  private readonly log: Logger;
  private readonly retry: RetryPolicy;
  private readonly concurrency: number;
  private readonly progressLogMs: number;
  private running = false;

  constructor(spec: MirrorSpec, private readonly opts: EngineOptions) {
    this.upstream = new Upstream({
      url: spec.url,
      type: spec.type,
      ...(spec.caFile ? { caFile: spec.caFile } : {}),
      ...(opts.idleTimeoutMs ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
    });
    this.filters = spec.filters ?? {};
    this.log = opts.log.child({ upstream: this.upstream.url });
    this.retry = opts.retry ?? DEFAULT_RETRY;
    this.breaker = new CircuitBreaker(opts.breaker ?? DEFAULT_BREAKER);
    this.concurrency = Math.max(1, opts.concurrency ?? 2);
    this.progressLogMs = opts.progressLogMs ?? 30_000;
  }

  close(): void {
    this.upstream.close();
  }

  async run(opts: RunOptions = {}): Promise<MirrorReport> {
    if (this.running) throw new Error(`a mirror run from ${this.upstream.url} is already in progress`);
    this.running = true;
    try {
      return await this.runOnce(opts);
    } finally {
      this.running = false;
    }
  }

  private get layout() {
    return this.opts.store.layout;
  }

  private async runOnce(opts: RunOptions): Promise<MirrorReport> {
    const started = Date.now();
    const report: MirrorReport = {
      upstream: this.upstream.url,
      type: this.upstream.type,
      dryRun: opts.dryRun === true,
      startedAt: new Date(started).toISOString(),
      seconds: 0,
      listed: 0,
      selected: 0,
      plan: [],
      results: [],
    };
    const finish = () => {
      report.seconds = (Date.now() - started) / 1000;
      return report;
    };
    const paused = this.breaker.pausedUntil();
    if (paused) {
      report.pausedUntil = paused.toISOString();
      this.log.info({ paused_until: report.pausedUntil }, 'mirror: upstream paused after repeated failures; skipping this run');
      return finish();
    }
    this.log.info({ dry_run: report.dryRun }, 'mirror: run started');
    let images: UpstreamImage[];
    try {
      const listing = await listUpstream(this.upstream, this.filters, (url) => this.getJson(url, opts));
      images = listing.images;
      report.listed = images.length + listing.rejected.length;
      for (const bad of listing.rejected) {
        // Only a broken manifest the filters would have picked is a failure of this run.
        if (!bad.wanted(this.filters)) continue;
        this.log.warn({ uuid: bad.uuid, err: bad.message }, 'mirror: upstream manifest cannot be mirrored');
        report.results.push({ uuid: bad.uuid ?? '-', outcome: 'failed', error: bad.message });
      }
      this.log.info({ listed: report.listed, requests: listing.requests }, 'mirror: upstream listed');
    } catch (err) {
      report.error = (err as Error).message;
      this.log.error({ err: report.error }, 'mirror: listing the upstream failed');
      return finish();
    }
    const selected = images
      .filter((i) => i.state === 'active' && matches(i, this.filters))
      .sort((a, b) => publishedMs(a) - publishedMs(b) || (a.uuid < b.uuid ? -1 : 1));
    report.selected = selected.length;
    const plan = await this.plan(selected, images, report, opts);
    report.plan = plan;
    opts.listener?.planned?.(plan);
    if (report.dryRun) {
      for (const entry of plan) report.results.push(itemResult(entry, 'planned'));
      this.log.info({ would_copy: plan.length, present: count(report, 'present') }, 'mirror: dry run finished');
      return finish();
    }
    await this.execute(plan, report, opts);
    await removeOldPartials(mirrorDir(this.layout.root), PARTIAL_TTL_MS).catch(() => undefined);
    finish();
    const bytes = report.results.reduce((sum, r) => sum + (r.bytes ?? 0), 0);
    const summary = {
      copied: count(report, 'copied'),
      present: count(report, 'present'),
      failed: count(report, 'failed'),
      bytes,
      seconds: report.seconds,
    };
    if (summary.failed > 0) this.log.warn(summary, 'mirror: run finished with failures');
    else this.log.info(summary, 'mirror: run finished');
    return report;
  }

  private getJson(url: URL, opts: RunOptions): Promise<unknown> {
    return withRetry(() => this.upstream.getJson(url, opts.signal), this.retryContext(this.upstream.show(url), opts));
  }

  private retryContext(what: string, opts: RunOptions) {
    return {
      policy: this.retry,
      breaker: this.breaker,
      ...(opts.signal ? { signal: opts.signal } : {}),
      onRetry: (err: Error, delayMs: number, attempt: number) => {
        this.log.warn({ what, err: err.message, attempt, retry_in_ms: delayMs }, 'mirror: failed; retrying');
        opts.listener?.retrying?.(what, err, delayMs);
      },
      onOpen: (until: Date, err: Error) => {
        this.log.error({ paused_until: until.toISOString(), err: err.message }, 'mirror: upstream keeps failing; paused');
      },
    };
  }

  private present(uuid: string): boolean {
    return this.opts.store.get(uuid) !== undefined || existsSync(this.layout.imageDir(uuid));
  }

  private deletedHere(uuid: string): boolean {
    return existsSync(this.layout.tombstonePath(uuid));
  }

  /**
   * The copies to make, origins before the images built on them. Origins
   * not in the listing (disabled, unactivated, filtered out) are fetched one
   * by one; a chain stops at the first image serve_dir already has.
   */
  private async plan(selected: UpstreamImage[], listed: UpstreamImage[], report: MirrorReport, opts: RunOptions): Promise<PlanEntry[]> {
    const known = new Map(listed.map((i) => [i.uuid, i]));
    const entries = new Map<string, PlanEntry>();
    const fail = (image: UpstreamImage, error: string) => {
      const result = { ...itemResult({ image, role: 'selected', originOf: [] }, 'failed'), error };
      report.results.push(result);
      this.log.warn({ uuid: image.uuid, name: image.name, version: image.version, err: error }, 'mirror: cannot mirror image');
      opts.listener?.finished?.(result);
    };
    for (const image of selected) {
      if (entries.has(image.uuid)) {
        entries.get(image.uuid)!.role = 'selected';
        continue;
      }
      if (this.present(image.uuid)) {
        report.results.push(itemResult({ image, role: 'selected', originOf: [] }, 'present'));
        continue;
      }
      if (this.deletedHere(image.uuid)) {
        report.results.push(itemResult({ image, role: 'selected', originOf: [] }, 'deleted'));
        continue;
      }
      const chain = [image];
      let problem: string | undefined;
      for (let cur = image; cur.origin !== undefined && !problem;) {
        const origin: string = cur.origin;
        if (this.present(origin) || entries.has(origin)) break;
        if (this.deletedHere(origin)) problem = `its origin ${origin} was deleted here`;
        else if (chain.length >= MAX_CHAIN) problem = `its origin chain is longer than ${MAX_CHAIN}`;
        else if (chain.some((c) => c.uuid === origin)) problem = `its origin chain loops at ${origin}`;
        else {
          try {
            const next: UpstreamImage = known.get(origin) ?? toUpstreamImage(this.upstream,
              await this.getJson(this.upstream.manifestUrl(origin), opts));
            if (next.uuid !== origin) throw new BadManifest(origin, `asked for origin ${origin}, got ${next.uuid}`);
            known.set(origin, next);
            chain.push(next);
            cur = next;
          } catch (err) {
            const status = (err as UpstreamError).status;
            problem = status === 404 ? `its origin ${origin} does not exist upstream` : `its origin ${origin}: ${(err as Error).message}`;
          }
        }
      }
      if (!problem) {
        problem = chain.map((c, i) => checkManifest(localManifest(c, i === 0 ? 'selected' : 'origin'))
          .map((p) => `${c.uuid === image.uuid ? 'manifest' : `origin ${c.uuid}`}: ${p}`)).flat().join('; ') || undefined;
      }
      if (problem) {
        fail(image, problem);
        continue;
      }
      for (let i = chain.length - 1; i >= 0; i--) {
        const c = chain[i]!;
        if (!entries.has(c.uuid)) entries.set(c.uuid, { image: c, role: i === 0 ? 'selected' : 'origin', originOf: [] });
        const parent = c.origin ? entries.get(c.origin) : undefined;
        if (parent && !parent.originOf.includes(c.uuid)) parent.originOf.push(c.uuid);
      }
    }
    return [...entries.values()];
  }

  /** Copies the plan, `concurrency` images at a time, each after its origin. */
  private async execute(plan: PlanEntry[], report: MirrorReport, opts: RunOptions): Promise<void> {
    const done = new Map<string, Promise<boolean>>();
    const results = new Map<string, ItemResult>();
    let next = 0;
    const worker = async () => {
      while (next < plan.length) {
        const entry = plan[next++]!;
        const origin = entry.image.origin;
        let settle!: (ok: boolean) => void;
        done.set(entry.image.uuid, new Promise((r) => (settle = r)));
        let result: ItemResult;
        if (origin && done.has(origin) && !(await done.get(origin))) {
          result = { ...itemResult(entry, 'failed'), error: `its origin ${origin} could not be copied` };
        } else if (opts.signal?.aborted) {
          result = { ...itemResult(entry, 'failed'), error: 'the run was stopped' };
        } else {
          result = await this.copy(entry, opts);
        }
        results.set(entry.image.uuid, result);
        settle(result.outcome === 'copied' || result.outcome === 'present');
        opts.listener?.finished?.(result, entry);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, plan.length) }, worker));
    for (const entry of plan) report.results.push(results.get(entry.image.uuid)!);
  }

  private async copy(entry: PlanEntry, opts: RunOptions): Promise<ItemResult> {
    const { image } = entry;
    const started = Date.now();
    const log = this.log.child({ uuid: image.uuid });
    try {
      // One process copies an image at a time; another that holds it makes this one give up for now.
      return await withImageLock(this.layout, image.uuid, async () => {
        if (this.present(image.uuid)) return itemResult(entry, 'present');
        if (this.deletedHere(image.uuid)) return itemResult(entry, 'deleted');
        opts.listener?.started?.(entry);
        log.info({ name: image.name, version: image.version, role: entry.role, size: image.size }, 'mirror: copying image');
        let fetched = 0;
        let resumedFrom = 0;
        let lastLog = Date.now();
        const dir = mirrorDir(this.layout.root);
        const got = await withRetry(() => download(this.upstream, dir, image, {
          bytes: (n) => {
            fetched += n;
            opts.listener?.bytes?.(entry, n);
            if (Date.now() - lastLog >= this.progressLogMs) {
              lastLog = Date.now();
              log.info({ bytes: fetched, size: image.size }, 'mirror: download progress');
            }
          },
          resumed: (from) => {
            resumedFrom = from;
            log.info({ from, size: image.size }, 'mirror: resuming an interrupted download');
          },
        }, opts.signal), this.retryContext(`image ${image.uuid}`, opts));
        try {
          await this.opts.writer.create(localManifest(image, entry.role), this.sidecar(image), {
            source: createReadStream(got.file, { highWaterMark: 1024 * 1024 }),
            compression: image.compression,
            expect: { sha1: image.sha1, size: image.size, maxBytes: image.size },
          });
        } catch (err) {
          // Published by someone else meanwhile (an HTTP import, a peer).
          if (err instanceof ApiError && err.restCode === 'ImageUuidAlreadyExists') {
            await fs.rm(got.file, { force: true });
            return itemResult(entry, this.deletedHere(image.uuid) ? 'deleted' : 'present');
          }
          throw err;
        }
        await fs.rm(got.file, { force: true });
        const seconds = (Date.now() - started) / 1000;
        log.info({ name: image.name, version: image.version, bytes: fetched, resumed_from: resumedFrom || undefined, seconds },
          'mirror: image copied');
        return { ...itemResult(entry, 'copied'), bytes: fetched, resumedFrom, seconds };
      }, 0);
    } catch (err) {
      const message = err instanceof ApiError && err.statusCode === 503
        ? 'another process is copying or changing this image; try again later'
        : (err as Error).message;
      // Anything but the upstream's or the store's known failures is a local problem or a bug: log it whole.
      if (!(err instanceof UpstreamError) && !(err instanceof ApiError)) log.error({ err }, 'mirror: copying failed');
      else log.warn({ err: message }, 'mirror: copying failed');
      return { ...itemResult(entry, 'failed'), error: message };
    }
  }

  private sidecar(image: UpstreamImage): Sidecar {
    const sidecar: Sidecar = { source: { via: 'mirror', url: this.upstream.url, type: this.upstream.type } };
    if (image.legacy && Object.keys(image.legacy).length > 0) sidecar.legacy = image.legacy;
    return withHistory(sidecar, 'mirrored', 'mirror');
  }
}

function publishedMs(image: UpstreamImage): number {
  const ms = typeof image.manifest.published_at === 'string' ? Date.parse(image.manifest.published_at) : NaN;
  return Number.isNaN(ms) ? 0 : ms;
}

function itemResult(entry: PlanEntry, outcome: Outcome): ItemResult {
  return { uuid: entry.image.uuid, name: entry.image.name, version: entry.image.version, role: entry.role, outcome };
}

const FILE_EXTRAS = ['dataset_guid', 'digest', 'uncompressedDigest'];

/**
 * The manifest the copy is published with: the upstream's, with this
 * server's state rules. A picked image is active; an origin keeps its
 * state, so a disabled one stays disabled and an unactivated one
 * unactivated (the reaper never removes an origin).
 */
export function localManifest(image: UpstreamImage, role: Role): JsonObject {
  const m = structuredClone(image.manifest);
  delete m.activated;
  delete m.channels;
  m.v = 2;
  m.uuid = image.uuid;
  if (typeof m.owner !== 'string' || m.owner === '') m.owner = ZERO_UUID;
  const state = role === 'selected' ? 'active' : image.state;
  if (state === 'active' || state === 'disabled') {
    m.state = state;
    m.disabled = state === 'disabled';
    if (typeof m.published_at !== 'string') m.published_at = new Date().toISOString();
  } else {
    m.state = (STATES as readonly string[]).includes(state) ? state : 'unactivated';
  }
  const upstreamFile = Array.isArray(m.files) && isObject(m.files[0]) ? m.files[0] : {};
  const file: JsonObject = { sha1: image.sha1, size: image.size, compression: image.compression };
  for (const key of FILE_EXTRAS) if (typeof upstreamFile[key] === 'string') file[key] = upstreamFile[key];
  m.files = [file];
  if (image.origin) m.origin = image.origin;
  return m;
}

/** Why this server could not serve the manifest, if it could not. */
function checkManifest(m: JsonObject): string[] {
  const loaded = normalizeManifest(m, new Date().toISOString());
  return loaded.ok ? [] : loaded.problems;
}
