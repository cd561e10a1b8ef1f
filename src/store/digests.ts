/*
 * Folders written by legacy tools carry no MD5, yet sdc-clients' getImageFile
 * refuses a download without a Content-MD5 header. This worker reads such
 * files once, in the background, checks them against the manifest's sha1 on
 * the way, and records the MD5s in the folders' server.json, a batch at a
 * time. Where serve_dir is read-only the MD5 is kept in memory.
 *
 * A good neighbour: it reads at a bounded rate (each file counting at least
 * FILE_COST bytes, for the opens and the write it brings), so the pass over
 * a large legacy serve_dir takes a while and the machine never notices.
 * A download that needs an MD5 not known yet jumps the queue: its file is
 * read at full speed while the client waits.
 */
import fsp from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log.js';
import { isObject } from '../manifest/types.js';
import { writeFileAtomic } from './atomic.js';
import { hashFile } from './file-hash.js';
import type { Layout } from './layout.js';
import type { ImageRecord, StoredFile } from './record.js';

/** What a file costs the rate budget at least, in bytes. */
const FILE_COST = 64 * 1024;
/** Recorded MD5s are written out once this many wait, or FLUSH_MS after the first. */
const FLUSH_COUNT = 64;
const FLUSH_MS = 10_000;

/** Identifies the exact bytes a digest belongs to. */
function fileKey(uuid: string, f: StoredFile): string {
  return `${uuid}/${f.name}:${f.dev}:${f.ino}:${f.size}:${f.mtimeMs}`;
}

interface Job {
  /** Aborted when a download waits for this file: no more pauses, the one under way included. */
  hurry: AbortController;
  done: Promise<void>;
}

/** Spends a byte budget at `bytesPerSecond`; no credit piles up while idle. */
class Pacer {
  private nextFree = 0;

  constructor(private readonly bytesPerSecond: number) {}

  /** How long to wait before going on after spending `bytes`. */
  spend(bytes: number): number {
    const now = Date.now();
    this.nextFree = Math.max(this.nextFree, now) + (bytes * 1000) / this.bytesPerSecond;
    return this.nextFree - now;
  }
}

export class DigestWorker {
  private readonly known = new Map<string, string>();
  /** Files whose bytes disagree with their manifest: not blessed with an MD5. */
  private readonly mismatched = new Set<string>();
  private readonly jobs = new Map<string, Job>();
  /** MD5s computed but not yet in server.json: uuid → file index → file. */
  private readonly unwritten = new Map<string, Map<number, StoredFile>>();
  private unwrittenCount = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private running: Promise<void> | null = null;
  private again = false;
  private readonly stopper = new AbortController();
  private readonly pacer: Pacer;

  constructor(
    private readonly layout: Layout,
    private readonly log: Logger,
    private readonly records: () => readonly ImageRecord[],
    rateMBps: number,
  ) {
    this.pacer = new Pacer(rateMBps * 1024 * 1024);
  }

  /** Fills in MD5s this worker computed earlier for a freshly loaded record. */
  apply(record: ImageRecord): void {
    for (const f of record.files) f.md5 ??= this.known.get(fileKey(record.uuid, f));
  }

  /** Starts a pass over the index, or queues one after the pass in progress. */
  kick(): void {
    if (this.stopper.signal.aborted) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.passes().finally(() => {
      this.running = null;
    });
  }

  /**
   * Has files[index] hashed now, at full speed, and waits up to `waitMs`
   * for it. Returns at once when the MD5 is known or can't be had.
   */
  async want(record: ImageRecord, index: number, waitMs: number): Promise<void> {
    const f = record.files[index];
    if (!f || f.md5 || this.stopper.signal.aborted || this.mismatched.has(fileKey(record.uuid, f))) return;
    this.start(record, index, f).hurry.abort();
    const job = this.start(record, index, f);
    const timer = new AbortController();
    await Promise.race([job.done, sleep(waitMs, undefined, { signal: timer.signal }).catch(() => undefined)]);
    timer.abort();
    // The job may have hashed the same bytes for an earlier record of this image.
    f.md5 ??= this.known.get(fileKey(record.uuid, f));
  }

  /** Resolves when no pass is running and what it found is written (for shutdown and tests). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
    await Promise.all([...this.jobs.values()].map((j) => j.done));
    await this.flush();
  }

  /** Abandons the file being read; MD5s already computed are still written by idle(). */
  stop(): void {
    this.stopper.abort();
  }

  private async passes(): Promise<void> {
    do {
      this.again = false;
      for (const record of this.records()) {
        for (const [i, f] of record.files.entries()) {
          if (this.stopper.signal.aborted) return;
          const key = fileKey(record.uuid, f);
          if ((f.md5 ??= this.known.get(key)) || this.mismatched.has(key)) continue;
          await this.start(record, i, f).done;
        }
      }
    } while (this.again);
  }

  /** The job hashing this file, started unless one already runs. */
  private start(record: ImageRecord, index: number, f: StoredFile): Job {
    const key = fileKey(record.uuid, f);
    const running = this.jobs.get(key);
    if (running) return running;
    const job: Job = { hurry: new AbortController(), done: Promise.resolve() };
    job.done = this.digest(record, index, f, job)
      .catch((err: unknown) => {
        if (!this.stopper.signal.aborted) this.log.warn({ err, uuid: record.uuid }, 'md5 failed');
      })
      .finally(() => this.jobs.delete(key));
    this.jobs.set(key, job);
    return job;
  }

  private async digest(record: ImageRecord, index: number, f: StoredFile, job: Job): Promise<void> {
    const signal = this.stopper.signal;
    const pause = this.pauser(job);
    let spent = 0;
    const hashes = await hashFile(this.layout.filePath(record.uuid, f.name), {
      chunkBytes: 256 * 1024,
      expectedBytes: f.size,
      signal,
      pace: (bytes) => {
        spent += bytes;
        return pause(bytes);
      },
    });
    if (spent < FILE_COST) await pause(FILE_COST - spent);
    const key = fileKey(record.uuid, f);
    const { sha1, md5 } = await hashes.digest();
    if (sha1 !== record.manifest.files[index]?.sha1) {
      this.mismatched.add(key);
      this.log.error({ uuid: record.uuid, file: f.name }, 'file does not match the sha1 in its manifest');
      return;
    }
    f.md5 = md5;
    this.known.set(key, f.md5);
    this.queueWrite(record.uuid, index, f);
  }

  /** Waits out the rate budget `bytes` cost; at once when the job is hurried, an error when stopped. */
  private pauser(job: Job): (bytes: number) => Promise<void> {
    const either = AbortSignal.any([this.stopper.signal, job.hurry.signal]);
    return async (bytes) => {
      if (!job.hurry.signal.aborted) await sleep(this.pacer.spend(bytes), undefined, { signal: either }).catch(() => undefined);
      this.stopper.signal.throwIfAborted();
    };
  }

  private queueWrite(uuid: string, index: number, f: StoredFile): void {
    let files = this.unwritten.get(uuid);
    if (!files) this.unwritten.set(uuid, files = new Map());
    files.set(index, f);
    this.unwrittenCount++;
    if (this.unwrittenCount >= FLUSH_COUNT) void this.flush();
    else this.flushTimer ??= setTimeout(() => void this.flush(), FLUSH_MS).unref();
  }

  /** Writes the MD5s computed so far, one folder after the other. */
  private flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const batch = [...this.unwritten];
    this.unwritten.clear();
    this.unwrittenCount = 0;
    this.flushing = this.flushing.then(async () => {
      for (const [uuid, files] of batch) {
        await this.record(uuid, files).catch((err: NodeJS.ErrnoException) => {
          this.log.debug({ uuid, code: err.code }, 'md5 kept in memory only');
        });
      }
    });
    return this.flushing;
  }

  /** Merges the MD5s into server.json, keeping whatever else it holds. */
  private async record(uuid: string, computed: Map<number, StoredFile>): Promise<void> {
    const path = this.layout.sidecarPath(uuid);
    const current: unknown = await fsp.readFile(path, 'utf8').then(JSON.parse, () => ({}));
    const sidecar = isObject(current) ? current : {};
    const files = Array.isArray(sidecar.files) ? [...sidecar.files] : [];
    for (const [index, f] of computed) {
      files[index] = { ...(isObject(files[index]) ? files[index] : {}), name: f.name, md5: f.md5 };
    }
    for (let i = 0; i < files.length; i++) files[i] ??= {};
    await writeFileAtomic(path, `${JSON.stringify({ ...sidecar, files }, null, 2)}\n`, this.layout.stagingRoot());
  }
}
