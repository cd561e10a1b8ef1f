/*
 * What the global-zone publishing tests share: a serve_dir with its config
 * file, import-image run as a real child, and a fingerprint of a folder
 * tree to prove that a refused import left nothing behind.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import type { ExecutionContext } from 'ava';
import { REPO_ROOT, tmpDir } from '../helpers/images.js';
import { writeConfig } from '../cli/spawn.js';
import { collect, type Result } from '../ssh/sshd.js';

export const IMPORT_IMAGE = path.join(REPO_ROOT, 'scripts', 'import-image');
export const MKIMG = path.join(REPO_ROOT, 'scripts', 'mkimg');
export const UUID_LINE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n$/;

export interface Served {
  serveDir: string;
  configFile: string;
}

export function served(t: ExecutionContext, config: Record<string, unknown> = {}): Served {
  const serveDir = tmpDir(t, 'imgsrv-serve-');
  return { serveDir, configFile: writeConfig(t, { serve_dir: serveDir, ...config }) };
}

/** Runs scripts/import-image --config <config> ARGS with `input` on stdin. */
export function importImage(s: Served, args: string[], input?: Buffer | Readable): Promise<Result> {
  const child = spawn(IMPORT_IMAGE, ['--config', s.configFile, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  return collect(child, input);
}

export const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

/** A gzip stream of `size` random bytes. */
export function randomGzip(size = 64 * 1024): Buffer {
  return gzipSync(randomBytes(size), { level: 1 });
}

/** Every entry under `dir`: folders as "dir", files as their sha1. */
export function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const name = path.join(rel, entry.name);
      if (entry.isDirectory()) {
        out[name] = 'dir';
        walk(name);
      } else {
        out[name] = sha1(fs.readFileSync(path.join(dir, name)));
      }
    }
  };
  walk('');
  return out;
}

/** The image folders of a serve_dir. */
export function imageDirs(serveDir: string): string[] {
  return fs.readdirSync(serveDir).filter((n) => /^[0-9a-f]{8}-[0-9a-f-]{27}$/.test(n)).sort();
}

export function readManifest(serveDir: string, uuid: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(serveDir, uuid, 'manifest.json'), 'utf8'));
}

/** The bytes of an image's one file, found through server.json. */
export function imageFile(serveDir: string, uuid: string): Buffer {
  const sidecar = JSON.parse(fs.readFileSync(path.join(serveDir, uuid, 'server.json'), 'utf8'));
  return fs.readFileSync(path.join(serveDir, uuid, sidecar.files[0].name));
}

/** stderr as lines, without the final newline. */
export function lines(text: string): string[] {
  return text.split('\n').filter((l, i, all) => l !== '' || i < all.length - 1);
}
