/*
 * Every change to serve_dir goes through here: new images (through the
 * import transaction), files added to unactivated images, manifest and
 * state changes, deletion. Each change to an existing image runs under its
 * lock and rewrites files atomically; the index is refreshed before the
 * call returns, so the caller's next read sees the change.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { ImageUuidAlreadyExists, ResourceNotFound } from '../errors.js';
import { normalizeManifest } from '../manifest/normalize.js';
import { isObject, type Compression, type JsonObject } from '../manifest/types.js';
import { fsyncDir, writeFileAtomic } from './atomic.js';
import { ImportTxn, type FileExpectations } from './import.js';
import { fileNameFor } from './layout.js';
import { withImageLock } from './locks.js';
import { readSidecarSync, type Sidecar } from './sidecar.js';
import type { ImageRecord, ImageStore } from './store.js';

export interface IncomingFile {
  source: Readable;
  compression: Compression;
  expect: FileExpectations;
}

/** What a change sees of an image, and may replace. */
export interface ImageFiles {
  manifest: JsonObject;
  sidecar: Sidecar;
}

export type Change = (current: ImageFiles) => Partial<ImageFiles> | Promise<Partial<ImageFiles>>;

/**
 * Emits 'import' ({ ok: boolean }) once for every file it takes in, so
 * metrics can count imports without the store knowing about them.
 */
export class ImageWriter extends EventEmitter {
  constructor(private readonly store: ImageStore) {
    super();
  }

  /** Reports the outcome of taking in one file. */
  private async counted<T>(work: () => Promise<T>): Promise<T> {
    try {
      const result = await work();
      this.emit('import', { ok: true });
      return result;
    } catch (err) {
      this.emit('import', { ok: false });
      throw err;
    }
  }

  private get layout() {
    return this.store.layout;
  }

  /** Publishes a new image folder, with its file if one is given. */
  async create(manifest: JsonObject, sidecar: Sidecar, file?: IncomingFile): Promise<ImageRecord> {
    const uuid = String(manifest.uuid);
    await this.refuseDeleted(uuid);
    const txn = await ImportTxn.begin(this.layout);
    const publish = async () => {
      if (file) {
        const name = fileNameFor(String(manifest.name), String(manifest.version), file.compression);
        const digest = await txn.receiveFile(file.source, name, file.expect);
        manifest.files = [{ ...fileFacts(manifest.files), sha1: digest.sha1, size: digest.size, compression: file.compression }];
        sidecar = { ...sidecar, files: [{ name, md5: digest.md5 }], uploaded_at: new Date().toISOString() };
      }
      await txn.publish(uuid, manifest, sidecar);
    };
    try {
      await (file ? this.counted(publish) : publish());
    } finally {
      await txn.abort();
    }
    return this.indexed(uuid);
  }

  /**
   * Receives a file for an existing image, then, under the image's lock,
   * lets `check` refuse it (an activated image's files are immutable) and
   * swaps it in. The upload itself holds no lock.
   */
  async addFile(uuid: string, file: IncomingFile, check: (current: ImageFiles) => void): Promise<ImageRecord> {
    const current = this.store.get(uuid);
    if (!current) throw ResourceNotFound(`image ${uuid} not found`);
    const txn = await ImportTxn.begin(this.layout);
    try {
      await this.counted(() => this.swapFile(txn, current, file, check));
    } finally {
      await txn.abort();
    }
    return this.indexed(uuid);
  }

  private async swapFile(txn: ImportTxn, current: ImageRecord, file: IncomingFile, check: (current: ImageFiles) => void) {
    const uuid = current.uuid;
    const name = fileNameFor(current.manifest.name, current.manifest.version, file.compression);
    const digest = await txn.receiveFile(file.source, name, file.expect);
    await withImageLock(this.layout, uuid, async () => {
      const now = this.read(uuid);
      check(now);
      const old = now.sidecar.files?.[0]?.name;
      // Forget the old file first: a crash in between leaves an image without a file, never a mismatch.
      await this.write(uuid, { manifest: { ...now.manifest, files: [] }, sidecar: { ...now.sidecar, files: [] } });
      if (old && old !== name) await fs.rm(this.layout.filePath(uuid, old), { force: true });
      await txn.adoptFile(name, uuid, name);
      await this.write(uuid, {
        sidecar: { ...now.sidecar, files: [{ name, md5: digest.md5 }], uploaded_at: new Date().toISOString() },
        manifest: { ...now.manifest, files: [{ sha1: digest.sha1, size: digest.size, compression: file.compression }] },
      });
    });
  }

  /** Applies `change` to the manifest and sidecar under the image's lock. */
  async change(uuid: string, change: Change): Promise<ImageRecord> {
    await this.changeOnDisk(uuid, change);
    return this.indexed(uuid);
  }

  /**
   * The same, for an image the index may not serve at all (verify --repair
   * disables folders whose file is missing or truncated).
   */
  async changeOnDisk(uuid: string, change: Change): Promise<void> {
    await withImageLock(this.layout, uuid, async () => {
      const current = this.read(uuid);
      await this.write(uuid, await change(current));
    });
    this.store.refreshNow(uuid);
  }

  /**
   * Deletes an image: the folder is renamed out of serve_dir in one step,
   * then removed. An image that was ever activated leaves a tombstone, so
   * its uuid is never reused by accident; one deleted before activation
   * does not (imgadm deletes after a failed publish, then retries).
   */
  async remove(uuid: string, by: string): Promise<void> {
    await withImageLock(this.layout, uuid, async () => {
      const { manifest } = this.read(uuid);
      if (manifest.state === 'active' || manifest.state === 'disabled') {
        const tombstone = { uuid, name: manifest.name, version: manifest.version, deleted_at: new Date().toISOString(), by };
        await fs.mkdir(path.dirname(this.layout.tombstonePath(uuid)), { recursive: true });
        await writeFileAtomic(this.layout.tombstonePath(uuid), `${JSON.stringify(tombstone)}\n`, this.layout.stagingRoot());
      }
      const trash = this.layout.trashDir(`${process.pid}-${randomUUID()}`);
      await fs.mkdir(this.layout.trashRoot(), { recursive: true });
      await fs.rename(this.layout.imageDir(uuid), trash);
      await fsyncDir(this.layout.root);
      await fs.rm(trash, { recursive: true, force: true });
    });
    this.store.refreshNow(uuid);
  }

  /**
   * The on-disk manifest and sidecar, read fresh (the index may lag another
   * process). A legacy v1 manifest comes back in its v2 form, its file names
   * and v1-only facts moved to the sidecar: any change writes it as v2.
   */
  private read(uuid: string): ImageFiles {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(this.layout.manifestPath(uuid), 'utf8'));
    } catch {
      throw ResourceNotFound(`image ${uuid} not found`);
    }
    const sidecar = readSidecarSync(this.layout.sidecarPath(uuid));
    if (!isObject(raw) || raw.v !== undefined) return { manifest: isObject(raw) ? raw : {}, sidecar };
    const normalized = normalizeManifest(raw, new Date().toISOString());
    if (!normalized.ok) throw ResourceNotFound(`image ${uuid} not found`);
    const { manifest, legacy, paths } = normalized.value;
    const files = paths.map((name, i) => ({ ...sidecar.files?.[i], ...(name ? { name } : {}) }));
    return { manifest: { ...manifest }, sidecar: { ...sidecar, files, legacy: legacy ?? undefined } };
  }

  /** Sidecar first: the manifest is what makes a change visible. */
  private async write(uuid: string, files: Partial<ImageFiles>): Promise<void> {
    const staging = this.layout.stagingRoot();
    if (files.sidecar) await writeFileAtomic(this.layout.sidecarPath(uuid), `${JSON.stringify(files.sidecar, null, 2)}\n`, staging);
    if (files.manifest) await writeFileAtomic(this.layout.manifestPath(uuid), `${JSON.stringify(files.manifest, null, 2)}\n`, staging);
  }

  private async refuseDeleted(uuid: string): Promise<void> {
    const tomb = await fs.readFile(this.layout.tombstonePath(uuid), 'utf8').catch(() => undefined);
    if (tomb !== undefined) throw ImageUuidAlreadyExists(uuid, 'belonged to an image that was deleted; it cannot be reused');
  }

  private indexed(uuid: string): ImageRecord {
    const record = this.store.refreshNow(uuid);
    if (!record) throw new Error(`image ${uuid} was written but does not load`);
    return record;
  }
}

/**
 * What a copied manifest says of its file beyond size, sha1 and compression
 * (a mirror or a peer hands these in; they describe the very bytes checked).
 */
function fileFacts(files: unknown): JsonObject {
  const first = Array.isArray(files) && isObject(files[0]) ? files[0] : {};
  const facts: JsonObject = {};
  for (const key of ['dataset_guid', 'digest', 'uncompressedDigest']) if (typeof first[key] === 'string') facts[key] = first[key];
  return facts;
}
