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
  /** ManifestFacts as JSON, parsed on first use. */
  facts: string;
  manifest: string;
  /** The IMGAPI listing element. */
  entry: string;
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
  /** The image's element of an IMGAPI listing, as JSON. */
  readonly entry: string;
  private detailOrText: RecordDetail | string;
  private factsOrText: ManifestFacts | string;

  private constructor(parts: Omit<RecordParts, 'detail' | 'facts'> & { detail: RecordDetail | string; facts: ManifestFacts | string }) {
    this.uuid = parts.uuid;
    this.publishedMs = parts.publishedMs;
    this.isPublic = parts.isPublic;
    this.state = parts.state;
    this.stamp = parts.stamp;
    this.manifestText = parts.manifest;
    this.detailOrText = parts.detail;
    this.factsOrText = parts.facts;
    this.entry = parts.entry;
  }

  static fromManifest(manifest: Manifest, detail: RecordDetail, stamp: string): ImageRecord {
    const view = toImgapi(manifest);
    const entry = JSON.stringify(view);
    // Most manifests are already in the listing's form (toImgapi copies values, it does not change them):
    // one string then serves both, and a cold start of 100,000 images serialises each once.
    const text = sameKeys(view, manifest) ? entry : JSON.stringify(manifest);
    return new ImageRecord({
      uuid: manifest.uuid,
      publishedMs: manifest.published_at ? Date.parse(manifest.published_at) : 0,
      isPublic: manifest.public,
      state: manifest.state,
      stamp,
      detail,
      facts: { name: manifest.name, version: manifest.version, type: manifest.type, os: manifest.os,
        owner: manifest.owner, origin: manifest.origin, channels: manifest.channels },
      manifest: text,
      entry,
    });
  }

  static fromParts(parts: RecordParts): ImageRecord {
    return new ImageRecord(parts);
  }

  /** A manifest of its own for each caller, who may change it. */
  get manifest(): Manifest {
    return JSON.parse(this.manifestText) as Manifest;
  }

  get facts(): ManifestFacts {
    if (typeof this.factsOrText === 'string') this.factsOrText = JSON.parse(this.factsOrText) as ManifestFacts;
    return this.factsOrText;
  }

  /** The facts as the snapshot keeps them. */
  get factsText(): string {
    const { factsOrText: f } = this;
    return typeof f === 'string' ? f : JSON.stringify(f);
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

/** Whether two objects have the same keys in the same order. */
function sameKeys(a: object, b: object): boolean {
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k, i) => k === kb[i]);
}
