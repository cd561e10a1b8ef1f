/*
 * Builders for serve_dir trees: image folders written the way the original
 * import-image, dsapid or this server lay them out, with file bytes made in
 * the test so every sha1 and size is known.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';

/** The repository root (tests run from dist/test/…). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The fixtures live in the repository (test/fixtures/README.md says where each comes from). */
export const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures');

export function fixture(rel: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, rel), 'utf8'));
}

export function fixtureBytes(rel: string): Buffer {
  return fs.readFileSync(path.join(FIXTURES, rel));
}

export const sha1 = (b: Buffer | string) => createHash('sha1').update(b).digest('hex');
export const md5b64 = (b: Buffer | string) => createHash('md5').update(b).digest('base64');

/**
 * A fresh temp folder, removed when the test ends, pass or fail. Register
 * it before whatever writes into it (a server, a child process): teardowns
 * run last to first, so the writer is stopped before the folder goes.
 * `npm test` points TMPDIR at a folder of its own and fails the run if
 * anything is left in it.
 */
export function tmpDir(t: ExecutionContext, prefix = 'imgsrv-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5 }));
  return dir;
}

/** sun_path holds 108 bytes, the terminating NUL included. */
const MAX_SOCKET_PATH = 107;

/**
 * A path for a unix socket in a fresh temp folder of its own (removed with
 * it). Fails at once, with the reason, where TMPDIR is too deep for one.
 */
export function socketPath(t: ExecutionContext, name = 'image-server.sock'): string {
  const p = path.join(tmpDir(t, 'imgsrv-sock-'), name);
  if (Buffer.byteLength(p) > MAX_SOCKET_PATH) {
    throw new Error(`${p} is ${Buffer.byteLength(p)} bytes, more than a unix socket path may have (${MAX_SOCKET_PATH}): use a shorter TMPDIR`);
  }
  return p;
}

export interface ImageOnDisk {
  uuid: string;
  dir: string;
  bytes: Buffer;
  sha1: string;
  fileName: string;
  manifest: Record<string, unknown>;
}

/**
 * Writes <root>/<uuid>/manifest.json and the file. For v2 manifests the file
 * name goes into server.json unless `inManifest` puts files[0].path there.
 */
export function writeImage(
  root: string,
  manifest: Record<string, unknown>,
  opts: { bytes?: Buffer; fileName?: string; sidecar?: boolean; md5?: boolean } = {},
): ImageOnDisk {
  const bytes = opts.bytes ?? randomBytes(1024);
  const uuid = String(manifest.uuid);
  const dir = path.join(root, uuid);
  const fileName = opts.fileName ?? 'file0.zfs.gz';
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, fileName), bytes);
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  if (opts.sidecar !== false && manifest.creator_uuid === undefined) {
    const entry: Record<string, string> = { name: fileName };
    if (opts.md5) entry.md5 = md5b64(bytes);
    fs.writeFileSync(path.join(dir, 'server.json'), JSON.stringify({ files: [entry] }));
  }
  return { uuid, dir, bytes, sha1: sha1(bytes), fileName, manifest };
}

let clock = Date.parse('2020-01-01T00:00:00.000Z');

/** A valid active v2 manifest for `bytes`; published_at increases per call. */
export function v2Manifest(bytes: Buffer, fields: Record<string, unknown> = {}): Record<string, unknown> {
  clock += 60_000;
  return {
    v: 2,
    uuid: randomUUID(),
    owner: '930896af-bf8c-48d4-885c-6573a94b1853',
    name: 'base-64',
    version: '1.0.0',
    state: 'active',
    disabled: false,
    public: true,
    published_at: new Date(clock).toISOString(),
    type: 'zone-dataset',
    os: 'smartos',
    files: [{ sha1: sha1(bytes), size: bytes.length, compression: 'gzip' }],
    description: 'test image',
    ...fields,
  };
}

/** A v1 manifest as the original import-image wrote it. */
export function v1Manifest(bytes: Buffer, fileName: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  const uuid = randomUUID();
  return {
    uuid,
    name: 'orgbase',
    version: '1.0.0',
    description: 'Base image for our organization',
    os: 'smartos',
    type: 'zone-dataset',
    platform_type: 'smartos',
    cloud_name: 'internal',
    urn: 'internal:internal:orgbase:1.0.0',
    creator_name: 'internal',
    creator_uuid: '5f0b7d2a-1c3e-4b8f-9e6d-7a8b9c0d1e2f',
    vendor_uuid: '5f0b7d2a-1c3e-4b8f-9e6d-7a8b9c0d1e2f',
    created_at: '2014-01-21T05:44Z',
    updated_at: '2014-01-21T05:44Z',
    published_at: '2014-01-21T05:44Z',
    files: [{ path: fileName, sha1: sha1(bytes), size: bytes.length, url: '-automatic-' }],
    ...fields,
  };
}
