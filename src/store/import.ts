/*
 * The import transaction every way in shares (HTTP, import-image, mirrors).
 * Bytes stream into a private folder under serve_dir/.staging, hashed and
 * counted on the way (a mirror's finished download is moved in and read
 * once instead); everything is fsynced; then one rename publishes the
 * folder as serve_dir/<uuid>, or moves one verified file into an existing
 * image folder. Until that rename nothing is visible, and a crash leaves
 * only a staging folder that the next start removes.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errors } from '../errors.js';
import { fsyncDir } from './atomic.js';
import { Digester, type FileDigest } from './hashing.js';
import { MANIFEST_FILE, SIDECAR_FILE, isSafeFileName, type Layout } from './layout.js';
import { pidAlive } from './pid.js';
import type { Sidecar } from './sidecar.js';
import { SyncedFileSink } from './synced-file.js';

export interface FileExpectations {
  sha1?: string;
  size?: number;
  maxBytes: number;
}

/** A complete file already under serve_dir (a finished download), to be moved into an import rather than copied. */
export class LocalFile {
  constructor(readonly file: string) {}
}

export class ImportTxn {
  private constructor(
    private readonly layout: Layout,
    readonly dir: string,
  ) {}

  static async begin(layout: Layout): Promise<ImportTxn> {
    const dir = layout.stagingDir(`${process.pid}-${randomUUID()}`);
    // Modes are left to the umask, so a login account and the service account
    // sharing one group (umask 002) can both change what the other published.
    await fs.mkdir(dir, { recursive: true });
    return new ImportTxn(layout, dir);
  }

  /**
   * Streams `source` into the staging folder as `name`, verified against
   * `expect`. A LocalFile is moved in (one rename, no second copy) and
   * read once to verify it.
   */
  async receiveFile(source: Readable | LocalFile, name: string, expect: FileExpectations): Promise<FileDigest> {
    if (!isSafeFileName(name)) throw new Error(`not a safe file name: ${name}`);
    const target = path.join(this.dir, name);
    let digester: Digester;
    if (source instanceof LocalFile) {
      await fs.rename(source.file, target);
      await syncFile(target);
      digester = new Digester(expect.maxBytes);
      await pipeline(createReadStream(target, { highWaterMark: 1024 * 1024 }), digester, new Writable({ write: (_c, _e, done) => done() }));
    } else {
      digester = new Digester(expect.maxBytes);
      // The file is fsynced before the stream finishes, and so before pipeline resolves.
      const file = new SyncedFileSink(target);
      // Read the source without owning it: a refused upload (too large) must
      // not destroy the HTTP request under it, or the client never gets its 400.
      await pipeline(source.iterator({ destroyOnReturn: false }), digester, file);
    }
    const digest = digester.digest();
    if (digest.size === 0) throw errors.Download('the image file is empty');
    if (expect.size !== undefined && digest.size !== expect.size) {
      throw errors.Download(`"size" ${expect.size} does not match the uploaded file size, ${digest.size}`);
    }
    if (expect.sha1 !== undefined && digest.sha1 !== expect.sha1.toLowerCase()) {
      throw errors.Download(`"sha1" hash, ${expect.sha1}, does not match the uploaded file sha1 hash, ${digest.sha1}`);
    }
    return digest;
  }

  /**
   * Writes the manifest and sidecar and renames the whole folder into place
   * as serve_dir/<uuid>. rename(2) refuses to replace a non-empty folder, so
   * of two transactions racing for one uuid exactly one wins.
   */
  async publish(uuid: string, manifest: object, sidecar: Sidecar): Promise<void> {
    await writeSynced(path.join(this.dir, MANIFEST_FILE), manifest);
    await writeSynced(path.join(this.dir, SIDECAR_FILE), sidecar);
    await fsyncDir(this.dir);
    try {
      await fs.rename(this.dir, this.layout.imageDir(uuid));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ENOTEMPTY') throw errors.ImageUuidAlreadyExists(`an image with uuid ${uuid} already exists`);
      throw err;
    }
    await fsyncDir(this.layout.root);
  }

  /** Moves a received file into an existing image folder (the caller holds its lock). */
  async adoptFile(name: string, uuid: string, as: string): Promise<void> {
    await fs.rename(path.join(this.dir, name), this.layout.filePath(uuid, as));
    await fsyncDir(this.layout.imageDir(uuid));
  }

  /** Removes whatever the transaction staged; safe to call after publish. */
  async abort(): Promise<void> {
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}

async function syncFile(file: string): Promise<void> {
  const fh = await fs.open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function writeSynced(file: string, value: object): Promise<void> {
  const fh = await fs.open(file, 'wx', 0o666);
  try {
    await fh.writeFile(`${JSON.stringify(value, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Removes staging folders and trash left by processes that died mid-way.
 * Folders of live processes (an import-image still running) are left alone.
 */
export async function removeLeftovers(layout: Layout): Promise<string[]> {
  const removed: string[] = [];
  for (const root of [layout.stagingRoot(), layout.trashRoot()]) {
    const names = await fs.readdir(root).catch(() => [] as string[]);
    for (const name of names) {
      if (pidAlive(Number(name.split('-')[0]))) continue;
      await fs.rm(path.join(root, name), { recursive: true, force: true });
      removed.push(path.join(path.basename(root), name));
    }
  }
  return removed;
}
