/*
 * The on-disk layout, and the only place that builds paths into serve_dir.
 * It is the layout of the original smartos-image-server, its import-image
 * script and dsapid, so an existing serve_dir works unchanged; everything
 * this server adds is a dot-entry the others ignore:
 *
 *   <serve_dir>/
 *   ├── <uuid>/                 one image; the name is its lowercase UUID
 *   │   ├── manifest.json       the pure manifest: v1 as legacy tools wrote it, or v2
 *   │   ├── server.json         sidecar: facts that belong to this server (file names,
 *   │   │                       md5, upload time, origin of the copy); optional
 *   │   └── <file name>         files[i].path of a v1 manifest, or the name in server.json
 *   ├── .staging/<pid>-<id>/    imports in progress, one folder per transaction;
 *   │                           published by renaming the folder to <uuid>/,
 *   │                           or holding the temp file of one atomic rewrite
 *   ├── .locks/<uuid>           held while a process changes that image
 *   ├── .deleted/<uuid>         tombstone of an activated image that was deleted
 *   ├── .trash/<pid>-<id>/      deleted image folders on their way out
 *   ├── .quarantine/<uuid>-<ms>/
 *   │                           an image folder whose file failed its check, set
 *   │                           aside (never served) for the operator to look at
 *   ├── .mirror/<uuid>-<sha1>.partial
 *   │                           a download from an upstream or a peer, kept across
 *   │                           restarts so that it resumes
 *   ├── .cluster/synced.json    what this server last agreed with the cluster index
 *   ├── .cluster/level.json     when this server was last level with that index
 *   ├── .index-cache.json       snapshot of the index, for a quick restart
 *   ├── .rescan                 left by `image-server rescan`: the server removes it
 *   │                           and checks every folder
 *   └── anything else           ignored (README, index.html, other dot-files)
 *
 * Callers hand in a UUID that matched UUID_RE and a file name that passed
 * isSafeFileName(); nothing else ever reaches a path. Image paths are
 * joined by plain concatenation onto the normalised root: with those two
 * checks that is exact, and loading 10,000 folders at start-up builds
 * tens of thousands of them.
 */
import path from 'node:path';
import { UUID_RE } from '../manifest/types.js';

export const MANIFEST_FILE = 'manifest.json';
export const SIDECAR_FILE = 'server.json';
const STAGING_DIR = '.staging';
const LOCK_DIR = '.locks';
const TOMBSTONE_DIR = '.deleted';
const TRASH_DIR = '.trash';
const QUARANTINE_DIR = '.quarantine';
const PARTIAL_DIR = '.mirror';
const CLUSTER_DIR = '.cluster';
const CLUSTER_STATE_FILE = 'synced.json';
const CLUSTER_LEVEL_FILE = 'level.json';
const INDEX_SNAPSHOT_FILE = '.index-cache.json';
export const RESCAN_REQUEST_FILE = '.rescan';

const UUID_SOURCE = UUID_RE.source.replace(/^\^|\$$/g, '');

/**
 * Every entry this server may create at the top of serve_dir besides image
 * folders: whether it must be empty (or absent) when no operation is in
 * flight, and the names it may hold otherwise. What the conformance tests
 * hold a serve_dir to: anything else is a leftover.
 */
export const SERVER_ENTRIES: Readonly<Record<string, { transient: boolean; dir: boolean; holds?: RegExp }>> = {
  [STAGING_DIR]: { transient: true, dir: true },
  [LOCK_DIR]: { transient: true, dir: true },
  [TRASH_DIR]: { transient: true, dir: true },
  [TOMBSTONE_DIR]: { transient: false, dir: true, holds: UUID_RE },
  [QUARANTINE_DIR]: { transient: false, dir: true, holds: new RegExp(`^${UUID_SOURCE}-[0-9]+$`) },
  [PARTIAL_DIR]: { transient: false, dir: true, holds: new RegExp(`^${UUID_SOURCE}-[0-9a-f]{40}\\.partial$`) },
  [CLUSTER_DIR]: { transient: false, dir: true, holds: new RegExp(`^(${[CLUSTER_STATE_FILE, CLUSTER_LEVEL_FILE].map((n) => n.replace('.', '\\.')).join('|')})$`) },
  [INDEX_SNAPSHOT_FILE]: { transient: false, dir: false },
  [RESCAN_REQUEST_FILE]: { transient: true, dir: false },
};

const RESERVED_NAMES = new Set([MANIFEST_FILE, SIDECAR_FILE, '.', '..']);

const EXTENSIONS = { gzip: '.gz', bzip2: '.bz2', xz: '.xz', none: '' } as const;

/** The name a newly published file gets: readable, and safe whatever the manifest says. */
export function fileNameFor(name: string, version: string, compression: keyof typeof EXTENSIONS): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._+-]+/g, '_').replace(/^[._]+/, '').slice(0, 100) || 'image';
  return `${safe(name)}-${safe(version)}.zfs${EXTENSIONS[compression]}`;
}

/** A plain file name inside an image directory: no separators, not reserved. */
export function isSafeFileName(name: string): boolean {
  return name.length > 0 && name.length <= 255 && !/[/\\\0]/.test(name) && !RESERVED_NAMES.has(name);
}

export function isImageDirName(name: string): boolean {
  return UUID_RE.test(name);
}

/** A partial download's name: the bytes of one exact file, whatever source they come from. */
export function partialName(uuid: string, sha1: string): string {
  if (!isImageDirName(uuid) || !/^[0-9a-f]{40}$/.test(sha1)) throw new Error(`not a partial download: ${uuid} ${sha1}`);
  return `${uuid}-${sha1}.partial`;
}

export class Layout {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  imageDir(uuid: string): string {
    return `${this.root}${path.sep}${this.checked(uuid)}`;
  }

  manifestPath(uuid: string): string {
    return `${this.imageDir(uuid)}${path.sep}${MANIFEST_FILE}`;
  }

  sidecarPath(uuid: string): string {
    return `${this.imageDir(uuid)}${path.sep}${SIDECAR_FILE}`;
  }

  filePath(uuid: string, name: string): string {
    if (!isSafeFileName(name)) throw new Error(`not a safe file name: ${name}`);
    return `${this.imageDir(uuid)}${path.sep}${name}`;
  }

  stagingRoot(): string {
    return path.join(this.root, STAGING_DIR);
  }

  /** A transaction's folder; `id` is made by the store, never by a client. */
  stagingDir(id: string): string {
    return path.join(this.root, STAGING_DIR, id);
  }

  lockRoot(): string {
    return path.join(this.root, LOCK_DIR);
  }

  lockPath(uuid: string): string {
    return path.join(this.root, LOCK_DIR, this.checked(uuid));
  }

  tombstoneRoot(): string {
    return path.join(this.root, TOMBSTONE_DIR);
  }

  tombstonePath(uuid: string): string {
    return path.join(this.root, TOMBSTONE_DIR, this.checked(uuid));
  }

  trashDir(id: string): string {
    return path.join(this.root, TRASH_DIR, id);
  }

  trashRoot(): string {
    return path.join(this.root, TRASH_DIR);
  }

  quarantineRoot(): string {
    return path.join(this.root, QUARANTINE_DIR);
  }

  /** Where image `uuid` is set aside at time `ms`. */
  quarantineDir(uuid: string, ms: number): string {
    return path.join(this.root, QUARANTINE_DIR, `${this.checked(uuid)}-${Math.trunc(ms)}`);
  }

  partialRoot(): string {
    return path.join(this.root, PARTIAL_DIR);
  }

  partialPath(uuid: string, sha1: string): string {
    return path.join(this.root, PARTIAL_DIR, partialName(uuid, sha1));
  }

  clusterLevelPath(): string {
    return path.join(this.root, CLUSTER_DIR, CLUSTER_LEVEL_FILE);
  }

  clusterStatePath(): string {
    return path.join(this.root, CLUSTER_DIR, CLUSTER_STATE_FILE);
  }

  indexSnapshotPath(): string {
    return path.join(this.root, INDEX_SNAPSHOT_FILE);
  }

  rescanRequestPath(): string {
    return path.join(this.root, RESCAN_REQUEST_FILE);
  }

  private checked(uuid: string): string {
    if (!isImageDirName(uuid)) throw new Error(`not an image uuid: ${uuid}`);
    return uuid;
  }
}
