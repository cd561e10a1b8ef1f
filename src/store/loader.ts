/*
 * Reads one image directory into an ImageRecord, or says why it can't be
 * served. Synchronous on purpose: a directory is a handful of small reads,
 * the initial load runs before the server listens, and rescans call it in
 * small batches between which the event loop runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { normalizeManifest } from '../manifest/normalize.js';
import { publishProblems } from '../manifest/publish.js';
import { isActivated } from '../manifest/states.js';
import { isObject, type Compression, type LegacyFields } from '../manifest/types.js';
import { isSafeFileName, type Layout } from './layout.js';
import { ImageRecord, type Relabelled, type StoredFile } from './record.js';
import { sidecarFromText, type Sidecar } from './sidecar.js';
import { compressionOfFile } from './sniff.js';

export type LoadResult =
  | { ok: true; record: ImageRecord }
  | { ok: false; problems: string[]; stamp: string }
  | { ok: false; gone: true };

function statStamp(st: fs.Stats | undefined): string {
  return st ? `${st.mtimeMs}:${st.ctimeMs}:${st.size}` : '-';
}

function tryStat(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    return undefined;
  }
}

function tryLstat(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
}

/**
 * Fingerprint of a directory and its metadata files, for rescans; with
 * `dirOnly`, just the directory's own part (the prefix of the full stamp).
 */
export function dirStamp(layout: Layout, uuid: string, dirOnly = false): string | undefined {
  const dir = tryStat(layout.imageDir(uuid));
  if (!dir?.isDirectory()) return undefined;
  if (dirOnly) return statStamp(dir);
  return [dir, tryStat(layout.manifestPath(uuid)), tryStat(layout.sidecarPath(uuid))].map(statStamp).join('|');
}

interface FileRead {
  text: string;
  st: fs.Stats;
}

/**
 * A file's bytes and the stat of that same open file; undefined if there
 * is none. A symlink is not followed: a manifest.json pointing anywhere
 * would let anyone who can make one have any file read and served.
 */
function readWithStat(p: string): FileRead | undefined {
  let fd: number;
  try {
    fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw new Error(`${path.basename(p)} is a symbolic link, which is not followed`, { cause: err });
    throw err;
  }
  try {
    const st = fs.fstatSync(fd);
    const buf = Buffer.allocUnsafe(st.size);
    const got = fs.readSync(fd, buf, 0, st.size, 0);
    return { st, text: buf.toString('utf8', 0, got) };
  } finally {
    fs.closeSync(fd);
  }
}

export function loadImageDir(layout: Layout, realRoot: string, uuid: string): LoadResult {
  const dirPath = layout.imageDir(uuid);
  const link = tryLstat(dirPath);
  const dir = link?.isSymbolicLink() ? tryStat(dirPath) : link;
  if (!dir?.isDirectory()) return { ok: false, gone: true };
  let manifestFile: FileRead | undefined;
  let sidecarFile: FileRead | undefined;
  const problems: string[] = [];
  try {
    manifestFile = readWithStat(layout.manifestPath(uuid));
    sidecarFile = readWithStat(layout.sidecarPath(uuid));
  } catch (err) {
    problems.push((err as Error).message);
  }
  // The stamp comes from the very reads below, so a change racing them is seen next time.
  const stamp = [dir, manifestFile?.st, sidecarFile?.st].map(statStamp).join('|');
  const fail = (p: string) => ({ ok: false as const, problems: [p], stamp });
  if (problems.length > 0) return { ok: false, problems, stamp };
  // A directory that is itself a symlink may point anywhere; check where.
  if (link?.isSymbolicLink() && !isInside(realRoot, dirPath)) return fail('directory resolves outside serve_dir');
  if (!manifestFile) return fail('manifest.json is missing');
  let raw: unknown;
  try {
    raw = JSON.parse(manifestFile.text);
  } catch (err) {
    return fail(`manifest.json: ${(err as Error).message}`);
  }
  const manifestMtime = manifestFile.st.mtime;
  const normalized = normalizeManifest(raw, manifestMtime.toISOString());
  if (!normalized.ok) return { ok: false, problems: normalized.problems, stamp };
  const { manifest, legacy, paths, unknownCompression } = normalized.value;
  if (manifest.uuid !== uuid) return fail(`manifest uuid ${manifest.uuid} does not match its directory`);
  // A folder written by another tool is held to the rules a published
  // manifest is (no markup in a name, no javascript: homepage).
  const invalid = publishProblems(manifest);
  if (invalid.length > 0) return { ok: false, problems: invalid.map((e) => `${e.field}: ${e.message ?? e.code}`), stamp };

  const sidecar = parseSidecar(sidecarFile?.text, problems);
  const legacyFacts = legacy ?? legacyFrom(sidecar);
  // A file that did not come in through this server's writer (a folder
  // another server or tool wrote) may carry a label derived from its name,
  // and imgadm trusts the label: a magic number that says otherwise wins.
  // Bytes with none keep their label (a raw zfs stream has no magic).
  const foreign = typeof sidecar.uploaded_at !== 'string';
  const relabelled: Relabelled[] = [];
  const files: StoredFile[] = [];
  manifest.files.forEach((mf, i) => {
    const name = sidecar.files?.[i]?.name ?? paths[i] ?? defaultFileName(layout, uuid);
    const file = typeof name === 'string' ? statFile(layout, realRoot, uuid, name, mf.size, problems) : undefined;
    if (!file) {
      if (typeof name !== 'string') problems.push(`files[${i}] names no file on disk`);
      return;
    }
    const md5 = sidecar.files?.[i]?.md5;
    if (typeof md5 === 'string') file.md5 = md5;
    if (unknownCompression.includes(i)) {
      mf.compression = sniffCompression(layout.filePath(uuid, file.name)) ?? 'none';
    } else if (foreign) {
      const actual = sniffCompression(layout.filePath(uuid, file.name));
      if (actual && actual !== 'none' && actual !== mf.compression) {
        relabelled.push({ file: file.name, labelled: mf.compression, actual });
        mf.compression = actual;
      }
    }
    files.push(file);
  });
  if (isActivated(manifest.state) && problems.length > 0) return { ok: false, problems, stamp };
  // An image not yet activated may still be waiting for its file.
  const detail = { legacy: legacyFacts, files: problems.length > 0 ? [] : files, ...(relabelled.length > 0 ? { relabelled } : {}) };
  return { ok: true, record: ImageRecord.fromManifest(manifest, detail, stamp) };
}

function parseSidecar(text: string | undefined, problems: string[]): Sidecar {
  if (text === undefined) return {};
  try {
    return sidecarFromText(text);
  } catch (err) {
    problems.push(`server.json: ${(err as Error).message}`);
    return {};
  }
}

function legacyFrom(sidecar: Sidecar): LegacyFields | null {
  const value: unknown = sidecar.legacy;
  if (!isObject(value)) return null;
  const legacy: LegacyFields = {};
  for (const key of ['creator_uuid', 'creator_name', 'vendor_uuid', 'cloud_name'] as const) {
    if (typeof value[key] === 'string') legacy[key] = value[key];
  }
  return legacy;
}

/**
 * A v2 manifest written by hand names no file; accept the directory's one
 * data file so such a directory still serves.
 */
function defaultFileName(layout: Layout, uuid: string): string | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(layout.imageDir(uuid)).filter((n) => isSafeFileName(n) && !n.startsWith('.'));
  } catch {
    return undefined;
  }
  return names.length === 1 ? names[0] : undefined;
}

function statFile(layout: Layout, realRoot: string, uuid: string, name: string, size: number,
  problems: string[]): StoredFile | undefined {
  if (!isSafeFileName(name)) {
    problems.push(`file name ${JSON.stringify(name)} is not a plain file name`);
    return undefined;
  }
  const p = layout.filePath(uuid, name);
  const link = tryLstat(p);
  const st = link?.isSymbolicLink() ? tryStat(p) : link;
  if (!st) {
    problems.push(`file ${name} is missing`);
    return undefined;
  }
  if (!st.isFile()) problems.push(`${name} is not a regular file`);
  else if (link?.isSymbolicLink() && !isInside(realRoot, p)) problems.push(`${name} resolves outside serve_dir`);
  else if (st.size !== size) problems.push(`${name} is ${st.size} bytes on disk, the manifest says ${size}`);
  else return { name, size: st.size, mtime: st.mtime, mtimeMs: st.mtimeMs, dev: st.dev, ino: st.ino };
  return undefined;
}

function isInside(realRoot: string, p: string): boolean {
  try {
    const real = fs.realpathSync.native(p);
    return real.startsWith(realRoot + path.sep);
  } catch {
    return false;
  }
}

/** The compression the file's first bytes show; undefined if it cannot be read (the stat passed, so rarely). */
function sniffCompression(p: string): Compression | undefined {
  try {
    return compressionOfFile(p);
  } catch {
    return undefined;
  }
}

/** Whether two reads of a folder differ only in what no listing shows (MD5s, the stamp). */
export function sameListing(a: ImageRecord, b: ImageRecord): boolean {
  return a.publishedMs === b.publishedMs && a.files.length === b.files.length
    && a.files.every((f, i) => {
      const g = b.files[i]!;
      return f.name === g.name && f.size === g.size && f.ino === g.ino && f.dev === g.dev && f.mtimeMs === g.mtimeMs;
    })
    && a.manifestText === b.manifestText && JSON.stringify(a.legacy) === JSON.stringify(b.legacy);
}

/** Whether each file is still the one the record saw: same inode, size and mtime. */
export function filesUnchanged(layout: Layout, record: ImageRecord): boolean {
  return record.files.every((f) => {
    try {
      const st = fs.statSync(layout.filePath(record.uuid, f.name));
      return st.ino === f.ino && st.size === f.size && st.mtimeMs === f.mtimeMs;
    } catch {
      return false;
    }
  });
}

/** The index's order: oldest published first, then by uuid. */
export function compareRecords(a: ImageRecord, b: ImageRecord): number {
  if (a.publishedMs !== b.publishedMs) return a.publishedMs - b.publishedMs;
  return a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0;
}
