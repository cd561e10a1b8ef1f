/*
 * The mirror engine: one upstream, one run at a time. A run lists the
 * upstream (element by element, catalog.ts), lets the planner decide
 * (planner.ts: which images, origins first, fetching the origins it asks
 * for), and executes the plan, copying what serve_dir lacks:
 *
 *   download into serve_dir/.mirror/ (resumable, verified: download.ts)
 *   → the compression read from the file's first bytes
 *   → ImageWriter.create, the import transaction every way in shares,
 *     which moves the finished download into its staging folder (no
 *     second copy) and checks size and sha1 once more.
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
import fs from 'node:fs/promises';
import { UpstreamError } from '../fetch/errors.js';
import type { Logger } from '../log.js';
import { ApiError, errors } from '../errors.js';
import { channelAdding, type Channels } from '../manifest/channels.js';
import { publishable } from '../manifest/publish.js';
import type { Compression } from '../manifest/types.js';
import { compressionOfFile } from '../store/sniff.js';
import type { ImageStore } from '../store/store.js';
import { LocalFile, type ImageWriter, type Provenance } from '../store/writer.js';
import {
  listUpstream, MAX_ENTRY_BYTES, toUpstreamImage, wanted, type Filters, type ListingHooks,
  type UpstreamImage,
} from './catalog.js';
import type { ArrayEntry } from './jsonarray.js';
import { download } from './download.js';
import { localManifest, plan, type FetchedOrigin, type LocalState, type PlanEntry, type Role } from './planner.js';
import { CircuitBreaker, DEFAULT_BREAKER, DEFAULT_RETRY, withRetry, type BreakerPolicy, type RetryPolicy } from './retry.js';
import { count, itemResult, type ItemResult, type MirrorListener, type MirrorReport } from './report.js';
import { Upstream, type ByteBudget, type UpstreamType } from './upstream.js';

export interface MirrorSpec {
  url: string;
  type: UpstreamType;
  filters?: Filters;
  caFile?: string;
  /** This server's channel the copies land in (a server with channels); the upstream's channel is in url. */
  channel?: string;
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
  /** The largest image file copied (max_upload_bytes): a bigger one is refused before a byte of it is fetched. */
  maxFileBytes?: number;
  /** The most a run's listing may take, all its answers (and retries) together. */
  maxListingBytes?: number;
  /** This server's channels, which say what channels an image here is in (with a spec's channel). */
  channels?: Channels | undefined;
}

export type { PlanEntry, Role };

export interface RunOptions {
  dryRun?: boolean;
  signal?: AbortSignal;
  listener?: MirrorListener;
}


const PARTIAL_TTL_MS = 7 * 24 * 3_600_000;
const MAX_LISTING_BYTES = 256 * 1024 * 1024;
/** Broken manifests reported one by one in a run; the rest are counted. */
const MAX_REPORTED_REJECTIONS = 20;

export class Mirror {
  readonly upstream: Upstream;
  readonly breaker: CircuitBreaker;
  private readonly filters: Filters;
  private readonly log: Logger;
  private readonly retry: RetryPolicy;
  private readonly concurrency: number;
  private readonly progressLogMs: number;
  private readonly maxListingBytes: number;
  private readonly maxFileBytes: number;
  private readonly channel: string | undefined;
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
    this.breaker.onOpen((until, err) => {
      this.log.error({ paused_until: until.toISOString(), err: (err as Error).message }, 'mirror: upstream keeps failing; paused');
    });
    this.concurrency = Math.max(1, opts.concurrency ?? 2);
    this.progressLogMs = opts.progressLogMs ?? 30_000;
    this.maxListingBytes = opts.maxListingBytes ?? MAX_LISTING_BYTES;
    this.maxFileBytes = opts.maxFileBytes ?? Number.MAX_SAFE_INTEGER;
    this.channel = spec.channel;
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

  private async runOnce(opts: RunOptions): Promise<MirrorReport> {
    const started = Date.now();
    const report: MirrorReport = {
      upstream: this.upstream.url,
      type: this.upstream.type,
      dryRun: opts.dryRun === true,
      startedAt: new Date(started).toISOString(),
      seconds: 0,
      listed: 0,
      rejected: 0,
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
      const rejections = this.rejectionLog(report, opts);
      const budget = { total: this.maxListingBytes, left: this.maxListingBytes };
      const listing = await listUpstream(this.upstream, this.filters, (url, consume) =>
        this.getJsonArray(url, consume, budget, opts), rejections);
      rejections.close();
      images = listing.images;
      report.listed = images.length + listing.rejected;
      report.rejected = listing.rejected;
      this.log.info({ listed: report.listed, rejected: listing.rejected, requests: listing.requests }, 'mirror: upstream listed');
    } catch (err) {
      report.error = (err as Error).message;
      this.log.error({ err: report.error }, 'mirror: listing the upstream failed');
      return finish();
    }
    const plan = await this.plan(images, report, opts);
    report.plan = plan;
    opts.listener?.planned?.(plan);
    if (report.dryRun) {
      for (const entry of plan) report.results.push(itemResult(entry, 'planned'));
      this.log.info({ would_copy: plan.length, present: count(report, 'present') }, 'mirror: dry run finished');
      return finish();
    }
    await this.execute(plan, report, opts);
    await this.opts.store.removeOldPartials(PARTIAL_TTL_MS).catch(() => undefined);
    finish();
    const bytes = report.results.reduce((sum, r) => sum + (r.bytes ?? 0), 0);
    const summary = {
      copied: count(report, 'copied'),
      present: count(report, 'present'),
      channel_added: count(report, 'channel-added'),
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

  private getJsonArray<T>(url: URL, consume: (entries: AsyncIterable<ArrayEntry[]>) => Promise<T>, budget: ByteBudget,
    opts: RunOptions): Promise<T> {
    const limits = { maxEntryBytes: MAX_ENTRY_BYTES, budget };
    return withRetry(() => this.upstream.getJsonArray(url, consume, limits, opts.signal), this.retryContext(this.upstream.show(url), opts));
  }

  /**
   * What becomes of the listed manifests that cannot be mirrored: those
   * the filters would have picked fail the run, the first few of them
   * logged and reported one by one, the rest counted in one line.
   */
  private rejectionLog(report: MirrorReport, opts: RunOptions): ListingHooks & { close(): void } {
    let unreported = 0;
    return {
      rejected: (bad) => {
        if (!wanted(bad, this.filters)) return;
        if (report.results.length >= MAX_REPORTED_REJECTIONS) {
          unreported++;
          return;
        }
        this.log.warn({ uuid: bad.uuid, err: bad.message }, 'mirror: upstream manifest cannot be mirrored');
        report.results.push({ uuid: bad.uuid ?? '-', outcome: 'failed', error: bad.message });
      },
      progress: (p) => opts.listener?.listing?.(p),
      close: () => {
        if (unreported === 0) return;
        this.log.warn({ count: unreported }, 'mirror: more upstream manifests cannot be mirrored (not logged one by one)');
        report.results.push({ uuid: '-', outcome: 'failed', error: `${unreported} more manifests cannot be mirrored` });
      },
    };
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
    };
  }

  private present(uuid: string): boolean {
    return this.opts.store.get(uuid) !== undefined || this.opts.store.hasFolder(uuid);
  }

  private deletedHere(uuid: string): boolean {
    return this.opts.store.isDeleted(uuid);
  }

  private outsideChannel(uuid: string): boolean {
    const record = this.opts.store.get(uuid);
    const { channels } = this.opts;
    return record !== undefined && channels !== undefined && this.channel !== undefined
      && !channels.of(record.facts).includes(this.channel);
  }

  /**
   * An image here that the upstream now lists in the mirrored channel joins
   * ours, as promoting it by hand would: the upstream promoted it.
   */
  private async joinChannel(image: UpstreamImage, opts: RunOptions): Promise<ItemResult> {
    const result = itemResult({ image, role: 'selected', originOf: [] }, opts.dryRun ? 'channel-planned' : 'channel-added');
    if (opts.dryRun) return result;
    const channel = this.channel!;
    const log = this.log.child({ uuid: image.uuid });
    try {
      await this.opts.writer.change(image.uuid, channelAdding(this.opts.channels!, channel), this.provenance());
      log.info({ name: image.name, version: image.version, channel }, 'mirror: image here added to the channel');
    } catch (err) {
      result.outcome = 'failed';
      result.error = `adding it to channel ${channel}: ${(err as Error).message}`;
      log.warn({ err: result.error }, 'mirror: cannot add image to the channel');
    }
    opts.listener?.finished?.(result);
    return result;
  }

  /**
   * The copies to make, origins before the images built on them (the
   * planner decides); origins not in the listing (disabled, unactivated,
   * filtered out) are fetched one by one as the planner asks for them.
   */
  private async plan(listed: UpstreamImage[], report: MirrorReport, opts: RunOptions): Promise<PlanEntry[]> {
    const origins = new Map<string, FetchedOrigin>();
    const local: LocalState = {
      has: (uuid) => this.present(uuid),
      deleted: (uuid) => this.deletedHere(uuid),
      outsideChannel: (uuid) => this.outsideChannel(uuid),
    };
    const options = { filters: this.filters, maxFileBytes: this.maxFileBytes };
    let decided = plan(listed, origins, local, options);
    while (decided.fetch.length > 0) {
      for (const uuid of decided.fetch) origins.set(uuid, await this.fetchOrigin(uuid, opts));
      decided = plan(listed, origins, local, options);
    }
    report.selected = decided.selected;
    for (const skip of decided.skips) {
      const result = { ...itemResult({ image: skip.image, role: 'selected', originOf: [] }, skip.outcome), ...(skip.error ? { error: skip.error } : {}) };
      report.results.push(result);
      if (skip.outcome !== 'failed') continue;
      const { image } = skip;
      this.log.warn({ uuid: image.uuid, name: image.name, version: image.version, err: skip.error }, 'mirror: cannot mirror image');
      opts.listener?.finished?.(result);
    }
    for (const image of decided.channelAdds) report.results.push(await this.joinChannel(image, opts));
    // Bytes an earlier run (under a larger max_upload_bytes) left waiting will never be used.
    if (!opts.dryRun) for (const image of decided.dropPartials) await this.dropPartial(image);
    return decided.copies;
  }

  private async fetchOrigin(uuid: string, opts: RunOptions): Promise<FetchedOrigin> {
    try {
      const image = toUpstreamImage(this.upstream, await this.getJson(this.upstream.manifestUrl(uuid), opts));
      return image.uuid === uuid ? image : { missing: `was asked for and ${image.uuid} came` };
    } catch (err) {
      return { missing: (err as UpstreamError).status === 404 ? 'does not exist upstream' : `cannot be fetched: ${(err as Error).message}` };
    }
  }

  private async dropPartial(image: UpstreamImage): Promise<void> {
    await fs.rm(await this.opts.store.partialFile(image.uuid, image.sha1), { force: true });
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
      return await this.opts.writer.claim(image.uuid, async () => {
        if (this.present(image.uuid)) return itemResult(entry, 'present');
        if (this.deletedHere(image.uuid)) return itemResult(entry, 'deleted');
        opts.listener?.started?.(entry);
        log.info({ name: image.name, version: image.version, role: entry.role, size: image.size }, 'mirror: copying image');
        let fetched = 0;
        let resumedFrom = 0;
        let lastLog = Date.now();
        const got = await withRetry(() => download(this.upstream, this.opts.store, image, this.maxFileBytes, {
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
        const copy = { ...image, compression: this.trueCompression(image, got.file, log) };
        try {
          await this.opts.writer.create(publishable(localManifest(copy, entry.role, this.channel)), this.provenance(), {
            file: {
              source: new LocalFile(got.file),
              compression: copy.compression,
              expect: { sha1: image.sha1, size: image.size, maxBytes: image.size },
            },
            legacy: image.legacy ?? null,
          });
        } catch (err) {
          // Published by someone else meanwhile (an HTTP import, a peer).
          if (errors.ImageUuidAlreadyExists.is(err)) {
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
      const message = errors.ServiceUnavailableError.is(err)
        ? 'another process is copying or changing this image; try again later'
        : (err as Error).message;
      // Anything but the upstream's or the store's known failures is a local problem or a bug: log it whole.
      if (!(err instanceof UpstreamError) && !(err instanceof ApiError)) log.error({ err }, 'mirror: copying failed');
      else log.warn({ err: message }, 'mirror: copying failed');
      return { ...itemResult(entry, 'failed'), error: message };
    }
  }

  /**
   * The compression the bytes have, whatever the manifest says: some
   * upstreams label a gzip file "none", and imgadm fails on such an image.
   */
  private trueCompression(image: UpstreamImage, file: string, log: Logger): Compression {
    const truth = compressionOfFile(file);
    if (truth !== image.compression) {
      log.warn({ upstream: this.upstream.url, labelled: image.compression, actual: truth },
        `mirror: ${this.upstream.url} labels this file's compression wrongly; it is stored as the bytes say`);
    }
    return truth;
  }

  private provenance(): Provenance {
    return { via: 'mirror', by: 'mirror', url: this.upstream.url, type: this.upstream.type };
  }
}
