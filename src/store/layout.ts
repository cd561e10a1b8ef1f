/*
 * The on-disk layout, and the only place that builds paths into serve_dir.
 * It is the layout of the original smartos-image-server, its import-image
 * script and dsapid, so an existing serve_dir works unchanged:
 *
 *   <serve_dir>/
 *   ├── <uuid>/               one image; the name is its lowercase UUID
 *   │   ├── manifest.json     the pure manifest: v1 as legacy tools wrote it, or v2
 *   │   ├── server.json       sidecar: facts that belong to this server (file names,
 *   │   │                     md5, upload time, origin of the copy); optional
 *   │   └── <file name>       files[i].path of a v1 manifest, or the name in server.json
 *   ├── .staging/             imports in progress; never read by the index
 *   └── anything else         ignored (README, index.html, dot-files)
 *
 * Callers hand in a UUID that matched UUID_RE and a file name that passed
 * isSafeFileName(); nothing else ever reaches path.join.
 */
import path from 'node:path';
import { UUID_RE } from '../manifest/types.js';

export const MANIFEST_FILE = 'manifest.json';
export const SIDECAR_FILE = 'server.json';
export const STAGING_DIR = '.staging';

const RESERVED_NAMES = new Set([MANIFEST_FILE, SIDECAR_FILE, '.', '..']);

/** A plain file name inside an image directory: no separators, not reserved. */
export function isSafeFileName(name: string): boolean {
  return name.length > 0 && name.length <= 255 && !/[/\\\0]/.test(name) && !RESERVED_NAMES.has(name);
}

export function isImageDirName(name: string): boolean {
  return UUID_RE.test(name);
}

export class Layout {
  constructor(readonly root: string) {}

  imageDir(uuid: string): string {
    if (!isImageDirName(uuid)) throw new Error(`not an image uuid: ${uuid}`);
    return path.join(this.root, uuid);
  }

  manifestPath(uuid: string): string {
    return path.join(this.imageDir(uuid), MANIFEST_FILE);
  }

  sidecarPath(uuid: string): string {
    return path.join(this.imageDir(uuid), SIDECAR_FILE);
  }

  filePath(uuid: string, name: string): string {
    if (!isSafeFileName(name)) throw new Error(`not a safe file name: ${name}`);
    return path.join(this.imageDir(uuid), name);
  }

  stagingRoot(): string {
    return path.join(this.root, STAGING_DIR);
  }
}
