/*
 * The one gate into the store. Every change to serve_dir goes through
 * here, whatever way it came in (HTTP, multipart, import-image, a mirror,
 * a cluster peer, the admin commands): new images through the import
 * transaction, files added to unactivated images, state and manifest
 * changes, deletion. The gate alone decides what may enter: the manifest
 * rules (manifest/publish.ts), a free uuid that was never deleted, an
 * origin that is here, and name@version uniqueness where a way in asks
 * for it. It checks before any byte is received (so a refusal costs
 * nothing) and again, under the image's lock, before anything becomes
 * visible. The index is refreshed before a call returns, so the caller's
 * next read sees the change.
 *
 * Callers hand in a typed Manifest and a small provenance record; the
 * sidecar (server.json) and the history it keeps are the store's own.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { errors } from '../errors.js';
import { manifestHash } from '../manifest/hash.js';
import { normalizeManifest } from '../manifest/normalize.js';
import { publishable } from '../manifest/publish.js';
import { isActivated, takesFiles, type Transition } from '../manifest/states.js';
import type { Compression, LegacyFields, Manifest, ManifestFile } from '../manifest/types.js';
import { fsyncDir, writeFileAtomic } from './atomic.js';
import { ImportTxn, LocalFile, type FileExpectations } from './import.js';

/** A finished download a caller hands in to be moved, not copied, into the import. */
export { LocalFile };
import { fileNameFor } from './layout.js';
import { withImageLock } from './locks.js';
import { readSidecarSync, withHistory, type Sidecar } from './sidecar.js';
import type { ImageRecord, ImageStore } from './store.js';
import { writeTombstone } from './tombstones.js';

/** How an image or a change came in, and who made it. */
export interface Provenance {
  via: 'http' | 'http-multipart' | 'import-image' | 'mirror' | 'cluster' | 'admin' | 'verify' | 'reaper';
  /** A user name, or the component: "mirror", "cluster:<peer>", "verify". */
  by: string;
  /** Where the bytes came from: an upstream's or a peer's URL. */
  url?: string;
  /** The upstream's protocol (imgapi or dsapi). */
  type?: string;
  /** The peer's id in the cluster. */
  peer?: string;
}

export interface IncomingFile {
  /** The bytes, or a complete file under serve_dir that is moved in (a mirror's finished download). */
  source: Readable | LocalFile;
  compression: Compression;
  expect: FileExpectations;
}

/** What is known of a file before its bytes arrive. */
export type FileFacts = Omit<IncomingFile, 'source'>;

export interface CreateOptions {
  file?: IncomingFile;
  /** v1-only facts of an image copied from a DSAPI source, for this server's DSAPI view. */
  legacy?: LegacyFields | null;
  /** import-image's rule: no two images share a name and version. */
  uniqueNameVersion?: boolean;
}

export interface ChangeOptions {
  /** The change applies only while the manifest still hashes to this (what the caller based it on). */
  expectHash?: string;
}

/** What an image folder holds besides its file: read fresh under the lock. */
interface ImageFiles {
  manifest: Manifest;
  sidecar: Sidecar;
}

/** Names the locks that make NAME@VERSION unique, and fetches of one image exclusive. */
const NAME_VERSION_NAMESPACE = '8b6b1b4e-4c0a-4f31-9a3e-5d6f3c2a9e10';

/** uuid is some 20 modules to load, wanted by the first write, not by a start. */
async function lockName(key: string): Promise<string> {
  const { v5 } = await import('uuid');
  return v5(key, NAME_VERSION_NAMESPACE);
}

/** What the history of a new image says first, by the way it came in. */
const ARRIVAL: Record<Provenance['via'], string> = {
  http: 'imported', 'http-multipart': 'created', 'import-image': 'imported', mirror: 'mirrored', cluster: 'pulled',
  admin: 'imported', verify: 'imported', reaper: 'imported',
};

/**
 * Emits 'import' ({ ok: boolean }) once for every file it takes in, so
 * metrics can count imports without the store knowing about them.
 */
export class ImageWriter extends EventEmitter {
  constructor(private readonly store: ImageStore) {
    super();
  }

  private get layout() {
    return this.store.layout;
  }

  /**
   * Whether `manifest` may enter as a new image, without writing anything:
   * throws the error create() would. `file` stands for the bytes still to
   * come, so an image published active in one step can be checked first.
   */
  async check(manifest: Manifest, opts: Pick<CreateOptions, 'uniqueNameVersion'> & { file?: FileFacts } = {}): Promise<void> {
    const candidate = opts.file ? withFile(manifest, placeholderFile(opts.file)) : manifest;
    if (opts.uniqueNameVersion) await this.store.rescan();
    this.refuse(candidate, opts.uniqueNameVersion === true);
  }

  /** Publishes a new image folder, with its file if one is given. */
  async create(manifest: Manifest, provenance: Provenance, opts: CreateOptions = {}): Promise<ImageRecord> {
    await this.check(manifest, opts);
    const txn = await ImportTxn.begin(this.layout);
    try {
      let final = manifest;
      let sidecar = this.newSidecar(manifest, provenance, opts.legacy);
      if (opts.file) {
        const file = opts.file;
        const name = fileNameFor(manifest.name, manifest.version, file.compression);
        const digest = await this.counted(() => txn.receiveFile(file.source, name, file.expect));
        final = withFile(manifest, { sha1: digest.sha1, size: digest.size, compression: file.compression });
        sidecar = { ...sidecar, files: [{ name, md5: digest.md5 }], uploaded_at: new Date().toISOString() };
      }
      await this.underNameLock(final, opts.uniqueNameVersion === true, () =>
        withImageLock(this.layout, final.uuid, async () => {
          if (opts.uniqueNameVersion) await this.store.rescan();
          this.refuse(final, opts.uniqueNameVersion === true);
          await txn.publish(final.uuid, final, sidecar);
        }));
    } finally {
      await txn.abort();
    }
    return this.indexed(manifest.uuid);
  }

  /**
   * Receives the file of an unactivated image and swaps it in under the
   * image's lock. An activated image's file is immutable: that is checked
   * before the upload (so a refusal reads nothing) and again under the lock.
   */
  async addFile(uuid: string, file: IncomingFile, provenance: Provenance): Promise<ImageRecord> {
    const current = this.store.get(uuid);
    if (!current) throw errors.ResourceNotFound(`image ${uuid} not found`);
    refuseFileFor(current.manifest);
    const txn = await ImportTxn.begin(this.layout);
    try {
      const name = fileNameFor(current.facts.name, current.facts.version, file.compression);
      const digest = await this.counted(() => txn.receiveFile(file.source, name, file.expect));
      await withImageLock(this.layout, uuid, async () => {
        const now = this.read(uuid);
        refuseFileFor(now.manifest);
        const old = now.sidecar.files?.[0]?.name;
        // Forget the old file first: a crash in between leaves an image without a file, never a mismatch.
        await this.write(uuid, { manifest: { ...now.manifest, files: [] }, sidecar: { ...now.sidecar, files: [] } });
        if (old && old !== name) await fs.rm(this.layout.filePath(uuid, old), { force: true });
        await txn.adoptFile(name, uuid, name);
        const sidecar = { ...now.sidecar, files: [{ name, md5: digest.md5 }], uploaded_at: new Date().toISOString() };
        await this.write(uuid, {
          sidecar: withHistory(sidecar, 'file added', provenance.by),
          manifest: { ...now.manifest, files: [{ sha1: digest.sha1, size: digest.size, compression: file.compression }] },
        });
      });
    } finally {
      await txn.abort();
    }
    return this.indexed(uuid);
  }

  /**
   * Applies a transition (manifest/states.ts, or an UpdateImage) under the
   * image's lock, recorded in its history. A transition that changes more
   * than the state is held to the publish rules like a new image.
   */
  async change(uuid: string, transition: Transition, provenance: Provenance, opts: ChangeOptions = {}): Promise<ImageRecord> {
    if (!this.store.get(uuid)) throw errors.ResourceNotFound(`image ${uuid} not found`);
    await this.changeOnDisk(uuid, transition, provenance, opts);
    return this.indexed(uuid);
  }

  /** The same, for a folder the index may skip as broken (verify --repair disables those). */
  async changeOnDisk(uuid: string, transition: Transition, provenance: Provenance, opts: ChangeOptions = {}): Promise<void> {
    await withImageLock(this.layout, uuid, async () => {
      const current = this.read(uuid);
      if (opts.expectHash !== undefined && manifestHash(current.manifest) !== opts.expectHash) {
        throw errors.ImageChanged(`image ${uuid} changed since it was read`);
      }
      const next = transition.apply(current.manifest);
      const manifest = onlyStateDiffers(current.manifest, next) ? next : publishable(next);
      await this.write(uuid, { manifest, sidecar: withHistory(current.sidecar, transition.event, provenance.by) });
    });
    this.store.refreshNow(uuid);
  }

  /**
   * Deletes an image: the folder is renamed out of serve_dir in one step,
   * then removed. An image that was ever activated leaves a tombstone, so
   * its uuid is never reused by accident; one deleted before activation
   * does not (imgadm deletes after a failed publish, then retries). An
   * image that others name as their origin stays.
   */
  async remove(uuid: string, provenance: Provenance): Promise<void> {
    await withImageLock(this.layout, uuid, async () => {
      const { manifest } = this.read(uuid);
      const dependents = this.store.dependents(uuid);
      if (dependents.length > 0) {
        throw errors.ImageHasDependentImages(`image "${uuid}" is the origin of ${dependents.map((d) => d.uuid).join(', ')}`);
      }
      if (isActivated(manifest.state)) {
        await writeTombstone(this.layout, {
          uuid, name: manifest.name, version: manifest.version, deleted_at: new Date().toISOString(), by: provenance.by,
        });
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
   * Sets aside an image whose file no longer matches its manifest: the
   * folder moves to the quarantine in one step, the reason in its history,
   * and is never served again from there. It leaves no tombstone, so a
   * cluster pulls the image again from a holder with good bytes. Nothing
   * happens if the image changed since its file was checked against
   * `sha1`; returns whether the folder moved.
   */
  async quarantine(uuid: string, sha1: string, problem: string, provenance: Provenance): Promise<boolean> {
    const moved = await withImageLock(this.layout, uuid, async () => {
      const { manifest, sidecar } = this.read(uuid);
      if (!manifest.files.some((f) => f.sha1 === sha1)) return false;
      await this.write(uuid, { sidecar: withHistory(sidecar, `quarantined: ${problem}`, provenance.by) });
      await fs.mkdir(this.layout.quarantineRoot(), { recursive: true });
      await fs.rename(this.layout.imageDir(uuid), this.layout.quarantineDir(uuid, Date.now()));
      await fsyncDir(this.layout.root);
      return true;
    });
    this.store.refreshNow(uuid);
    return moved;
  }

  /**
   * Runs `fn` (fetching an image from elsewhere) while no other fetch of
   * the same image runs, in this process or another; waits up to `waitMs`
   * for one that does, then fails with ServiceUnavailableError.
   */
  async claim<T>(uuid: string, fn: () => Promise<T>, waitMs = 0): Promise<T> {
    return withImageLock(this.layout, await lockName(`fetch\u0000${uuid}`), fn, waitMs);
  }

  /** Throws why `manifest` may not enter as a new image, if it may not. */
  private refuse(manifest: Manifest, uniqueNameVersion: boolean): void {
    const { uuid } = manifest;
    if (this.store.get(uuid) || this.store.hasFolder(uuid)) {
      throw errors.ImageUuidAlreadyExists(`an image with uuid ${uuid} already exists`);
    }
    if (this.store.isDeleted(uuid)) {
      throw errors.ImageUuidAlreadyExists(`uuid ${uuid} belonged to an image that was deleted; it cannot be reused`);
    }
    publishable(manifest);
    if (manifest.origin !== undefined && !this.store.get(manifest.origin)) {
      throw errors.OriginDoesNotExist(`origin image ${manifest.origin} does not exist`);
    }
    if (uniqueNameVersion) {
      const twin = this.store.list().find((r) => r.facts.name === manifest.name && r.facts.version === manifest.version);
      if (twin) throw errors.ImageNameVersionTaken(`${manifest.name} ${manifest.version} is already taken by image ${twin.uuid}`);
    }
  }

  private async underNameLock<T>(manifest: Manifest, unique: boolean, fn: () => Promise<T>): Promise<T> {
    if (!unique) return fn();
    return withImageLock(this.layout, await lockName(`${manifest.name}\u0000${manifest.version}`), fn);
  }

  private newSidecar(manifest: Manifest, provenance: Provenance, legacy: LegacyFields | null | undefined): Sidecar {
    const { by: _by, ...source } = provenance;
    let sidecar: Sidecar = withHistory({ source }, ARRIVAL[provenance.via], provenance.by);
    if (isActivated(manifest.state) && (provenance.via === 'http-multipart' || provenance.via === 'import-image')) {
      sidecar = withHistory(sidecar, 'activated', provenance.by);
    }
    if (legacy && Object.keys(legacy).length > 0) sidecar.legacy = legacy;
    return sidecar;
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

  /**
   * The on-disk manifest and sidecar, read fresh (the index may lag another
   * process). A legacy v1 manifest comes back in its v2 form, its file names
   * and v1-only facts moved to the sidecar: any change writes it as v2.
   */
  private read(uuid: string): ImageFiles {
    let raw: unknown;
    let mtime: Date;
    try {
      const file = this.layout.manifestPath(uuid);
      raw = JSON.parse(readFileSync(file, 'utf8'));
      mtime = statSync(file).mtime;
    } catch {
      throw errors.ResourceNotFound(`image ${uuid} not found`);
    }
    const sidecar = readSidecarSync(this.layout.sidecarPath(uuid));
    // The same fallback date as the loader's, so both read the same manifest.
    const normalized = normalizeManifest(raw, mtime.toISOString());
    if (!normalized.ok) throw errors.ResourceNotFound(`image ${uuid} not found`);
    const { manifest, legacy, paths } = normalized.value;
    if (paths.every((p) => p === undefined) && !legacy) return { manifest, sidecar };
    const files = paths.map((name, i) => ({ ...sidecar.files?.[i], ...(name ? { name } : {}) }));
    return { manifest, sidecar: { ...sidecar, files, ...(legacy ? { legacy } : {}) } };
  }

  /** Sidecar first: the manifest is what makes a change visible. */
  private async write(uuid: string, files: Partial<ImageFiles>): Promise<void> {
    const staging = this.layout.stagingRoot();
    if (files.sidecar) await writeFileAtomic(this.layout.sidecarPath(uuid), `${JSON.stringify(files.sidecar, null, 2)}\n`, staging);
    if (files.manifest) await writeFileAtomic(this.layout.manifestPath(uuid), `${JSON.stringify(files.manifest, null, 2)}\n`, staging);
  }

  private indexed(uuid: string): ImageRecord {
    const record = this.store.refreshNow(uuid);
    if (!record) throw new Error(`image ${uuid} was written but does not load`);
    return record;
  }
}

function refuseFileFor(manifest: Manifest): void {
  if (!takesFiles(manifest.state)) {
    throw errors.ImageFilesImmutable(`cannot add a file to image "${manifest.uuid}": it is activated`);
  }
}

/**
 * The manifest with its one file described, keeping what a copied manifest
 * says of that file beyond size, sha1 and compression (a mirror or a peer
 * hands these in; they describe the very bytes checked).
 */
function withFile(manifest: Manifest, facts: ManifestFile): Manifest {
  const described = manifest.files[0];
  const extras: Partial<ManifestFile> = {};
  for (const key of ['dataset_guid', 'digest', 'uncompressedDigest'] as const) {
    if (typeof described?.[key] === 'string') extras[key] = described[key];
  }
  return { ...manifest, files: [{ ...extras, sha1: facts.sha1, size: facts.size, compression: facts.compression }] };
}

/** What the gate assumes of a file that has not arrived yet. */
function placeholderFile(file: FileFacts): ManifestFile {
  return { sha1: file.expect.sha1 ?? '0'.repeat(40), size: file.expect.size ?? 1, compression: file.compression };
}

/** Whether two manifests differ in nothing but their state, disabled flag and publication date. */
function onlyStateDiffers(a: Manifest, b: Manifest): boolean {
  const strip = ({ state: _s, disabled: _d, published_at: _p, ...rest }: Manifest) => rest;
  return manifestHash(strip(a)) === manifestHash(strip(b));
}
