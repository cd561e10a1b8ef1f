/*
 * The manifests of test/fixtures laid out as serve_dirs, for the tests
 * that serve all of them at once. Fixtures sharing a uuid can't share a
 * serve_dir, so they are dealt into as many catalogs as needed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES, fixture, fixtureBytes, md5b64 } from './images.js';

const DIRS = ['v1-dsapi', 'v2-imgapi', 'incremental-chain', 'synthesized'];
const CHAIN_FILE = 'incremental-chain/file0.zfs.bz2';

export interface FixtureEntry {
  rel: string;
  manifest: Record<string, unknown>;
}

export function fixtureEntries(): FixtureEntry[] {
  return DIRS.flatMap((d) => fs.readdirSync(path.join(FIXTURES, d))
    .filter((f) => f.endsWith('.json'))
    .map((f) => ({ rel: `${d}/${f}`, manifest: fixture(`${d}/${f}`) })));
}

export function catalogs(entries: FixtureEntry[]): FixtureEntry[][] {
  const out: FixtureEntry[][] = [];
  for (const e of entries) {
    let cat = out.find((c) => !c.some((o) => o.manifest.uuid === e.manifest.uuid));
    if (!cat) out.push((cat = []));
    cat.push(e);
  }
  return out;
}

/**
 * Lays one fixture out: the chain's real 65-byte file, a sparse file of the
 * manifest's size for the others. server.json names the file (a v2
 * manifest names none) and, for the sparse files, records a placeholder md5
 * so the server's md5 worker does not read gigabytes of zeros; these tests
 * never download those files.
 */
export function layOutFixture(root: string, { rel, manifest }: FixtureEntry): void {
  const dir = path.join(root, String(manifest.uuid));
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  const file = (manifest.files as Record<string, unknown>[] | undefined)?.[0];
  if (!file) return;
  const name = typeof file.path === 'string' ? file.path : 'file0';
  const filePath = path.join(dir, name);
  let md5: string;
  if (rel.startsWith('incremental-chain/')) {
    const bytes = fixtureBytes(CHAIN_FILE);
    fs.writeFileSync(filePath, bytes);
    md5 = md5b64(bytes);
  } else {
    fs.writeFileSync(filePath, '');
    fs.truncateSync(filePath, Number(file.size) || 0);
    md5 = md5b64('placeholder: never downloaded');
  }
  fs.writeFileSync(path.join(dir, 'server.json'), JSON.stringify({ files: [{ name, md5 }] }));
}
