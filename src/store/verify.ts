/*
 * The integrity scrub: re-hashes every image file against the sha1 in its
 * manifest, and reports the folders the index had to skip because a file is
 * missing or its size is wrong. Repair disables what is wrong (never
 * deletes), so clients stop getting it and an operator can look.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { disabling } from '../manifest/states.js';
import { hashFile } from './file-hash.js';
import type { ImageRecord, ImageStore } from './store.js';
import type { ImageWriter } from './writer.js';

export interface VerifyProblem {
  uuid: string;
  name?: string;
  version?: string;
  problem: string;
  /** For a file that was read and does not match: the sha1 its manifest named then. */
  sha1?: string;
}

export interface VerifyOptions {
  /** Bytes per second to read at most; undefined for as fast as the disk goes. */
  rate?: number;
  /** Called with the number of bytes just read. */
  progress?: (bytes: number) => void;
  signal?: AbortSignal;
}

/** A pace that holds a read to `rate` bytes per second on average. */
function throttle(rate: number): (bytes: number) => Promise<void> {
  const started = Date.now();
  let seen = 0;
  return async (bytes) => {
    seen += bytes;
    const ahead = (seen / rate) * 1000 - (Date.now() - started);
    if (ahead > 0) await sleep(ahead);
  };
}

async function sha1Of(path: string, expectedBytes: number, opts: VerifyOptions): Promise<{ sha1: string; size: number }> {
  const limit = opts.rate ? throttle(opts.rate) : undefined;
  const hashes = await hashFile(path, {
    expectedBytes,
    pace: async (bytes) => {
      opts.progress?.(bytes);
      await limit?.(bytes);
    },
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const { sha1, size } = await hashes.digest();
  return { sha1, size };
}

/** Total bytes a full verify reads, for a progress bar. */
export function bytesToVerify(store: ImageStore): number {
  return store.list().reduce((sum, r) => sum + r.files.reduce((s, f) => s + f.size, 0), 0);
}

export async function verifyImages(store: ImageStore, opts: VerifyOptions = {}): Promise<VerifyProblem[]> {
  const problems: VerifyProblem[] = [];
  for (const [uuid, why] of store.brokenImages()) problems.push({ uuid, problem: why.join('; ') });
  for (const record of store.list()) problems.push(...await verifyImage(store, record, opts));
  return problems;
}

/** What is wrong with one image's files, read whole: nothing, or a problem per file. */
export async function verifyImage(store: ImageStore, record: ImageRecord, opts: VerifyOptions = {}): Promise<VerifyProblem[]> {
  const { uuid, manifest } = record;
  const problems: VerifyProblem[] = [];
  const problem = (text: string, sha1: string) => problems.push({ uuid, name: manifest.name, version: manifest.version, problem: text, sha1 });
  for (const [i, file] of record.files.entries()) {
    const expected = manifest.files[i]!;
    let got: { sha1: string; size: number };
    try {
      got = await sha1Of(store.layout.filePath(uuid, file.name), file.size, opts);
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      problem(`${file.name}: ${(err as Error).message}`, expected.sha1);
      continue;
    }
    if (got.size !== expected.size) problem(`${file.name} is ${got.size} bytes, the manifest says ${expected.size}`, expected.sha1);
    else if (got.sha1 !== expected.sha1) problem(`${file.name} has sha1 ${got.sha1}, the manifest says ${expected.sha1}`, expected.sha1);
  }
  return problems;
}

/**
 * Sets aside each image whose file does not match its manifest (a cluster
 * then pulls a good copy); returns the problems it did not resolve so.
 */
export async function quarantine(writer: ImageWriter, problems: VerifyProblem[], by = 'scrub'): Promise<VerifyProblem[]> {
  const left: VerifyProblem[] = [];
  for (const p of problems) {
    if (p.sha1 === undefined) {
      left.push(p);
      continue;
    }
    try {
      if (!await writer.quarantine(p.uuid, p.sha1, p.problem, { via: 'verify', by })) left.push({ ...p, problem: `${p.problem} (changed since; not set aside)` });
    } catch (err) {
      left.push({ ...p, problem: `${p.problem} (not set aside: ${(err as Error).message})` });
    }
  }
  return left;
}

/** Disables each image with a problem; returns the ones it could not change (unreadable manifests). */
export async function repair(writer: ImageWriter, problems: VerifyProblem[]): Promise<VerifyProblem[]> {
  const failed: VerifyProblem[] = [];
  for (const p of problems) {
    try {
      await writer.changeOnDisk(p.uuid, disabling(true, `disabled by verify: ${p.problem}`), { via: 'verify', by: 'verify' });
    } catch (err) {
      failed.push({ ...p, problem: `${p.problem} (not repaired: ${(err as Error).message})` });
    }
  }
  return failed;
}
