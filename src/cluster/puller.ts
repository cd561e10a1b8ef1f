/*
 * Pulls the images this server lacks from peers that hold them. The queue
 * is a heap keyed once per image: images with no origin first, then the
 * newest. An image whose origin is still to come waits beside the queue
 * until the origin lands. Small files go several at a time, large ones
 * one or two at a time, each kind in its own slots, so a large file never
 * holds up the small ones.
 *
 * Each file comes from a peer's GET /images/:uuid/file through the shared
 * fetcher (fetch/file.ts), verified against the size and sha1 of the
 * manifest from the index, into the store's partial download of that
 * exact file, which the import then moves into place. A peer that fails,
 * stalls or dies mid-transfer costs the attempt, not the bytes: the next
 * attempt resumes them from the holder that failed least (live servers
 * first) after an exponential backoff with jitter. A holder whose bytes do
 * not match is not asked again for that image until it announces itself
 * anew; when no holder is left with good bytes, the image is reported
 * failed and waits for a holder to change.
 */
import fs from 'node:fs/promises';
import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import type { Logger } from '../log.js';
import { errors } from '../errors.js';
import { HttpClient } from '../fetch/client.js';
import { BadBytes } from '../fetch/errors.js';
import { fetchFile } from '../fetch/file.js';
import type { Compression, LegacyFields } from '../manifest/types.js';
import type { ImageStore } from '../store/store.js';
import { LocalFile, type ImageWriter } from '../store/writer.js';
import type { Holder, IndexEntry } from './index-view.js';
import { PriorityQueue, type QueueKey } from './queue.js';

export interface PullerOptions {
  store: ImageStore;
  writer: ImageWriter;
  log: Logger;
  /** Large files pulled at once. */
  concurrency: number;
  /** Small files pulled at once. */
  smallConcurrency: number;
  /** Basic credentials for peers, if they need any. */
  authorization?: string;
  userAgent: string;
  holdersOf(uuid: string): Holder[];
  /** Whether `uuid` is in the index (an origin that is not will never come). */
  indexed(uuid: string): boolean;
  /** Called after each pull, whether it worked or not. */
  pulled(uuid: string, ok: boolean): void;
  /** A holder sent a whole file that does not match the manifest: it should know. */
  badBytes(uuid: string, holder: Holder, problem: string): void;
}

type WantState = 'queued' | 'running' | 'backoff' | 'origin' | 'failed';

interface Want {
  uuid: string;
  entry: IndexEntry;
  key: QueueKey;
  small: boolean;
  state: WantState;
  attempts: number;
  backoff: IBackoff<unknown> | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Cuts the running transfer off. */
  abort: AbortController | undefined;
  /** Network failures per holder id: the next try goes to the holder that failed least. */
  failures: Map<string, number>;
  /** Holders (id@revision of their key) that sent bytes that do not match. */
  bad: Set<string>;
}

/** No byte from a peer for this long and the transfer counts as failed. */
const STALL_MS = 30_000;
/** Files up to this size count as small. */
const SMALL_FILE_BYTES = 32 * 1024 * 1024;
const BACKOFF = new ExponentialBackoff({ initialDelay: 500, maxDelay: 30_000 });

export class Puller {
  private readonly wanted = new Map<string, Want>();
  private readonly queues = { small: new PriorityQueue<Want>(), large: new PriorityQueue<Want>() };
  private readonly running = { small: 0, large: 0 };
  /** Images no holder has good bytes of. */
  private readonly failedSet = new Set<string>();
  /** Images waiting for their origin, by origin. */
  private readonly children = new Map<string, Set<string>>();
  private stopped = false;
  readonly counts = { succeeded: 0, failed: 0 };

  private readonly client: HttpClient;

  constructor(private readonly opts: PullerOptions) {
    this.client = new HttpClient({
      userAgent: opts.userAgent,
      ...(opts.authorization ? { authorization: opts.authorization } : {}),
      stallMs: STALL_MS,
    });
  }

  /** Pull `uuid` (again, if it failed and a holder changed); a pull already running goes on. */
  want(uuid: string, entry: IndexEntry): void {
    if (this.stopped) return;
    const known = this.wanted.get(uuid);
    if (known) {
      known.entry = entry;
      if (known.state === 'origin' || known.state === 'failed') this.place(known);
      return;
    }
    const { files, published_at: publishedAt, origin } = entry.manifest;
    const size = files[0]?.size ?? 0;
    const published = publishedAt ? Date.parse(publishedAt) || 0 : 0;
    const want: Want = {
      uuid,
      entry,
      key: [origin ? 1 : 0, -published, uuid],
      small: size <= SMALL_FILE_BYTES,
      state: 'queued',
      attempts: 0,
      backoff: undefined,
      timer: undefined,
      abort: undefined,
      failures: new Map(),
      bad: new Set(),
    };
    this.wanted.set(uuid, want);
    this.place(want);
  }

  /** No longer wanted (deleted, disabled, here already): forgotten at once, a running pull cut off. */
  drop(uuid: string): void {
    const want = this.wanted.get(uuid);
    if (!want) return;
    this.wanted.delete(uuid);
    this.failedSet.delete(uuid);
    clearTimeout(want.timer);
    want.abort?.abort(new Error('no longer wanted'));
  }

  /** Images waiting or being pulled, not counting those that failed. */
  pending(): number {
    return this.wanted.size - this.failedSet.size;
  }

  pulling(): number {
    return this.running.small + this.running.large;
  }

  /** Images no holder has good bytes of: waiting for a holder to change. */
  failedUuids(): string[] {
    return [...this.failedSet];
  }

  uuids(): IterableIterator<string> {
    return this.wanted.keys();
  }

  stop(): void {
    this.stopped = true;
    for (const want of this.wanted.values()) {
      clearTimeout(want.timer);
      want.abort?.abort(new Error('server stopping'));
    }
    this.client.close();
  }

  /** Puts a want where it belongs now: the queue, beside its origin, or aside. */
  private place(want: Want): void {
    this.failedSet.delete(want.uuid);
    const origin = want.entry.manifest.origin;
    if (origin && this.opts.store.get(origin) === undefined && (this.wanted.has(origin) || this.opts.indexed(origin))) {
      want.state = 'origin';
      let set = this.children.get(origin);
      if (!set) this.children.set(origin, (set = new Set()));
      set.add(want.uuid);
      return;
    }
    const holders = this.opts.holdersOf(want.uuid);
    if (this.candidates(want, holders).length === 0) {
      // Registering an image lists its first holder in the same transaction: an image with none has lost every copy.
      if (want.state !== 'failed') {
        this.opts.log.warn({ uuid: want.uuid, holders: holders.map((h) => h.id) }, holders.length === 0
          ? 'no server holds this image any more; giving up until one does'
          : 'no holder has good bytes of this image; giving up until a holder changes');
      }
      want.state = 'failed';
      this.failedSet.add(want.uuid);
      return;
    }
    want.state = 'queued';
    this.queues[want.small ? 'small' : 'large'].push(want.key, want);
    this.pump();
  }

  private pump(): void {
    if (this.stopped) return;
    this.fill('small', this.opts.smallConcurrency);
    this.fill('large', this.opts.concurrency);
  }

  private fill(kind: 'small' | 'large', slots: number): void {
    const queue = this.queues[kind];
    while (this.running[kind] < slots && queue.size > 0) {
      const want = queue.pop()!;
      // A want dropped or moved since it was queued is skipped here rather than searched for.
      if (this.wanted.get(want.uuid) !== want || want.state !== 'queued') continue;
      void this.pull(want, kind);
    }
  }

  /** Holders in the order to try them: good bytes only, those that failed least, then live servers, then by id. */
  private candidates(want: Want, holders = this.opts.holdersOf(want.uuid)): Holder[] {
    const failed = (h: Holder) => want.failures.get(h.id) ?? 0;
    return holders
      .filter((h) => !want.bad.has(`${h.id}@${h.rev}`))
      .sort((a, b) => failed(a) - failed(b) || Number(b.live) - Number(a.live) || (a.id < b.id ? -1 : 1));
  }

  private async pull(want: Want, kind: 'small' | 'large'): Promise<void> {
    const holder = this.candidates(want)[0];
    if (!holder) {
      this.place(want);
      return;
    }
    const { uuid, entry } = want;
    want.state = 'running';
    this.running[kind]++;
    const log = this.opts.log.child({ uuid, from: holder.url, peer: holder.id });
    const started = Date.now();
    const { name, version, files } = entry.manifest;
    log.info({ name, version, size: files[0]?.size, attempt: want.attempts + 1 },
      'pulling image from a peer');
    let ok: boolean;
    try {
      await this.fetchInto(want, holder, log);
      ok = true;
      this.counts.succeeded++;
      log.info({ ms: Date.now() - started }, 'pulled image from a peer');
    } catch (err) {
      ok = this.opts.store.get(uuid) !== undefined || errors.ImageUuidAlreadyExists.is(err);
      if (!ok && this.wanted.get(uuid) === want && !this.stopped) this.failed(want, holder, err, log);
    } finally {
      want.abort = undefined;
      this.running[kind]--;
    }
    if (this.stopped) return;
    if (ok) {
      if (this.wanted.get(uuid) === want) this.drop(uuid);
      this.releaseChildren(uuid);
    }
    this.opts.pulled(uuid, ok);
    this.pump();
  }

  private failed(want: Want, holder: Holder, err: unknown, log: Logger): void {
    this.counts.failed++;
    want.attempts++;
    // Bytes kept from an earlier attempt may have come from another holder: only a whole file proves this one wrong.
    if (errors.Download.is(err) || (err instanceof BadBytes && err.keptFrom === 0)) {
      want.bad.add(`${holder.id}@${holder.rev}`);
      this.opts.badBytes(want.uuid, holder, describe(err));
    } else want.failures.set(holder.id, (want.failures.get(holder.id) ?? 0) + 1);
    if (this.candidates(want).length === 0) {
      log.warn({ err: describe(err), attempts: want.attempts }, 'pull failed');
      this.place(want);
      return;
    }
    want.backoff = want.backoff ? want.backoff.next(undefined) : BACKOFF.next();
    const delay = want.backoff.duration;
    log.warn({ err: describe(err), attempts: want.attempts, retry_ms: Math.round(delay) }, 'pull failed; will retry');
    want.state = 'backoff';
    want.timer = setTimeout(() => {
      want.timer = undefined;
      if (this.wanted.get(want.uuid) === want) this.place(want);
    }, delay).unref();
  }

  private releaseChildren(origin: string): void {
    const set = this.children.get(origin);
    if (!set) return;
    this.children.delete(origin);
    for (const uuid of set) {
      const want = this.wanted.get(uuid);
      if (want?.state === 'origin') this.place(want);
    }
  }

  private async fetchInto(want: Want, holder: Holder, log: Logger): Promise<void> {
    const { entry } = want;
    const manifest = entry.manifest;
    const file = manifest.files[0];
    if (!file || manifest.files.length !== 1) throw new Error(`the index lists ${manifest.files.length} files for this image; one is supported`);
    // channel=*: a peer with channels serves every channel's images; one without ignores it.
    const url = new URL(`${holder.url}/images/${manifest.uuid}/file?channel=*`);
    const abort = new AbortController();
    want.abort = abort;
    const partial = await this.opts.store.partialFile(manifest.uuid, file.sha1);
    const got = await fetchFile(this.client, url, { file: partial, size: file.size, sha1: file.sha1 }, {
      resumed: (offset) => log.info({ offset, size: file.size }, 'resuming an interrupted pull'),
    }, abort.signal);
    try {
      await this.opts.writer.create(structuredClone(manifest), { via: 'cluster', by: `cluster:${holder.id}`, url: holder.url, peer: holder.id }, {
        file: { source: new LocalFile(got.file), compression: file.compression as Compression, expect: { sha1: file.sha1, size: file.size, maxBytes: file.size } },
        legacy: entry.legacy as LegacyFields | null,
      });
    } finally {
      // Moved into the image when the import took it; not needed when another way in was first.
      await fs.rm(got.file, { force: true });
    }
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
