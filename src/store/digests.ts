/*
 * Folders written by legacy tools carry no MD5, yet sdc-clients' getImageFile
 * refuses a download without a Content-MD5 header. This worker reads such
 * files once, in the background and one at a time, checks them against the
 * manifest's sha1 on the way, and records the MD5 in the folder's
 * server.json. Where serve_dir is read-only the MD5 is kept in memory.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import type { Logger } from '../log.js';
import { isObject } from '../manifest/types.js';
import { writeFileAtomic } from './atomic.js';
import type { Layout } from './layout.js';
import type { ImageRecord, StoredFile } from './loader.js';

/** Identifies the exact bytes a digest belongs to. */
function fileKey(uuid: string, f: StoredFile): string {
  return `${uuid}/${f.name}:${f.dev}:${f.ino}:${f.size}:${f.mtimeMs}`;
}

export class DigestWorker {
  private readonly known = new Map<string, string>();
  /** Files whose bytes disagree with their manifest: not blessed with an MD5. */
  private readonly mismatched = new Set<string>();
  private running: Promise<void> | null = null;
  private again = false;
  private readonly stopper = new AbortController();

  constructor(
    private readonly layout: Layout,
    private readonly log: Logger,
    private readonly records: () => readonly ImageRecord[],
  ) {}

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

  /** Resolves when no pass is running (for shutdown and tests). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Abandons the file being read; nothing half-done is recorded. */
  stop(): void {
    this.stopper.abort();
  }

  private async passes(): Promise<void> {
    do {
      this.again = false;
      for (const record of this.records()) {
        for (const [i, f] of record.files.entries()) {
          if (this.stopper.signal.aborted) return;
          if (f.md5 || this.mismatched.has(fileKey(record.uuid, f))) continue;
          await this.digest(record, i, f).catch((err) => {
            if (!this.stopper.signal.aborted) this.log.warn({ err, uuid: record.uuid }, 'md5 failed');
          });
        }
      }
    } while (this.again);
  }

  private async digest(record: ImageRecord, index: number, f: StoredFile): Promise<void> {
    const md5 = createHash('md5');
    const sha1 = createHash('sha1');
    await pipeline(fs.createReadStream(this.layout.filePath(record.uuid, f.name)), new Writable({
      write(chunk: Buffer, _enc, done) {
        md5.update(chunk);
        sha1.update(chunk);
        done();
      },
    }), { signal: this.stopper.signal });
    const key = fileKey(record.uuid, f);
    if (sha1.digest('hex') !== record.manifest.files[index]?.sha1) {
      this.mismatched.add(key);
      this.log.error({ uuid: record.uuid, file: f.name }, 'file does not match the sha1 in its manifest');
      return;
    }
    f.md5 = md5.digest('base64');
    this.known.set(key, f.md5);
    await this.record(record.uuid, index, f).catch((err: NodeJS.ErrnoException) => {
      this.log.debug({ uuid: record.uuid, code: err.code }, 'md5 kept in memory only');
    });
  }

  /** Merges the MD5 into server.json, keeping whatever else it holds. */
  private async record(uuid: string, index: number, f: StoredFile): Promise<void> {
    const path = this.layout.sidecarPath(uuid);
    const current: unknown = await fsp.readFile(path, 'utf8').then(JSON.parse, () => ({}));
    const sidecar = isObject(current) ? current : {};
    const files = Array.isArray(sidecar.files) ? [...sidecar.files] : [];
    files[index] = { ...(isObject(files[index]) ? files[index] : {}), name: f.name, md5: f.md5 };
    for (let i = 0; i < files.length; i++) files[i] ??= {};
    await writeFileAtomic(path, `${JSON.stringify({ ...sidecar, files }, null, 2)}\n`, this.layout.stagingRoot());
  }
}
