/*
 * One image as the index holds it. A catalog of 100,000 images must not
 * cost 100,000 manifest object trees, nor a restart the parse of them all:
 * a record keeps its manifest as JSON text, with beside it the few facts
 * that listings, filters and lookups read, and the listing's own JSON of
 * it, made once. The manifest object is built when something asks for it.
 */
import { toImgapi } from '../manifest/views.js';
import type { Compression, ImageState, LegacyFields, Manifest } from '../manifest/types.js';

export interface StoredFile {
  name: string;
  size: number;
  /** base64 MD5 recorded when this server took the file in, if it did. */
  md5?: string;
  mtime: Date;
  mtimeMs: number;
  dev: number;
  ino: number;
}

export interface Relabelled {
  file: string;
  labelled: string;
  actual: Compression;
}

/** What a record knows of its folder besides the manifest. */
export interface RecordDetail {
  legacy: LegacyFields | null;
  files: StoredFile[];
  /** Files whose manifest names another compression than their bytes show; served as the bytes say. */
  relabelled?: Relabelled[];
}

/** The manifest fields filters and lookups read, without building the manifest. */
export interface ManifestFacts {
  name: string;
  version: string;
  type: string;
  os: string;
  owner: string;
  origin: string | undefined;
  channels: string[] | undefined;
}

/** The parts of a record as the index snapshot keeps them (index-cache.ts). */
export interface RecordParts {
  uuid: string;
  publishedMs: number;
  isPublic: boolean;
  state: ImageState;
  stamp: string;
  /** RecordDetail as JSON (StoredFile without its Date), parsed on first use. */
  detail: string;
  manifest: string;
  /** The IMGAPI listing element, when it is known. */
  entry: string | undefined;
}

export class ImageRecord {
  readonly uuid: string;
  /** published_at in ms (0 when there is none), the listing order's key. */
  readonly publishedMs: number;
  readonly isPublic: boolean;
  readonly state: ImageState;
  /** Changes whenever anything this record was read from changes. */
  stamp: string;
  /** The manifest, as JSON.stringify gave it. */
  readonly manifestText: string;
  private detailOrText: RecordDetail | string;
  private entryText: string | undefined;
  private knownFacts: ManifestFacts | undefined;

  private constructor(parts: Omit<RecordParts, 'detail'> & { detail: RecordDetail | string }) {
    this.uuid = parts.uuid;
    this.publishedMs = parts.publishedMs;
    this.isPublic = parts.isPublic;
    this.state = parts.state;
    this.stamp = parts.stamp;
    this.manifestText = parts.manifest;
    this.detailOrText = parts.detail;
    this.entryText = parts.entry;
  }

  static fromManifest(manifest: Manifest, detail: RecordDetail, stamp: string): ImageRecord {
    const record = new ImageRecord({
      uuid: manifest.uuid,
      publishedMs: manifest.published_at ? Date.parse(manifest.published_at) : 0,
      isPublic: manifest.public,
      state: manifest.state,
      stamp,
      detail,
      manifest: JSON.stringify(manifest),
      entry: undefined,
    });
    record.knownFacts = factsOf(manifest);
    return record;
  }

  static fromParts(parts: RecordParts): ImageRecord {
    return new ImageRecord(parts);
  }

  /** A manifest of its own for each caller, who may change it. */
  get manifest(): Manifest {
    return JSON.parse(this.manifestText) as Manifest;
  }

  get facts(): ManifestFacts {
    return (this.knownFacts ??= factsOf(this.manifest));
  }

  /** The image's element of an IMGAPI listing, as JSON. */
  get entry(): string {
    return (this.entryText ??= JSON.stringify(toImgapi(this.manifest)));
  }

  /** The entry, or undefined where it has not been made yet (the snapshot keeps what it can). */
  get entryIfMade(): string | undefined {
    return this.entryText;
  }

  get legacy(): LegacyFields | null {
    return this.detail.legacy;
  }

  /** The files; their MD5s are filled in place as they become known. */
  get files(): StoredFile[] {
    return this.detail.files;
  }

  get relabelled(): Relabelled[] | undefined {
    return this.detail.relabelled;
  }

  /** The detail as the snapshot keeps it. */
  get detailText(): string {
    const { detailOrText: d } = this;
    if (typeof d === 'string') return d;
    return JSON.stringify({ ...d, files: d.files.map(({ mtime: _mtime, ...f }) => f) });
  }

  private get detail(): RecordDetail {
    if (typeof this.detailOrText === 'string') {
      const detail = JSON.parse(this.detailOrText) as RecordDetail;
      // Rounded as fs.Stats rounds it (a Date truncates), so Last-Modified is the same after a restart.
      for (const f of detail.files) f.mtime = new Date(Math.round(f.mtimeMs));
      this.detailOrText = detail;
    }
    return this.detailOrText;
  }
}

function factsOf(m: Manifest): ManifestFacts {
  return { name: m.name, version: m.version, type: m.type, os: m.os, owner: m.owner, origin: m.origin, channels: m.channels };
}
