import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { createLogger } from '../../src/log.js';
import { reapUnactivated } from '../../src/store/reaper.js';
import { tmpDir, v2Manifest, writeImage } from '../helpers/images.js';
import { startServer } from '../helpers/server.js';

const HOUR = 3_600_000;

function age(dir: string, ms: number): void {
  const then = new Date(Date.now() - ms);
  for (const name of ['manifest.json', 'server.json']) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) fs.utimesSync(p, then, then);
  }
}

test('only unactivated images untouched for longer than the limit, and no origins, are reaped', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(10);
  const unactivated = (fields: Record<string, unknown> = {}) =>
    writeImage(root, v2Manifest(bytes, { state: 'unactivated', published_at: undefined, ...fields }), { bytes });
  const stale = unactivated();
  const fresh = unactivated();
  const staleOrigin = unactivated();
  const child = writeImage(root, v2Manifest(bytes, { origin: staleOrigin.uuid }), { bytes });
  const oldActive = writeImage(root, v2Manifest(bytes), { bytes });
  for (const img of [stale, staleOrigin, child, oldActive]) age(img.dir, 48 * HOUR);
  const server = await startServer(t, { serveDir: root });
  const reaped = await reapUnactivated(server.store, server.writer, 24 * HOUR, createLogger('silent'));
  t.deepEqual(reaped, [stale.uuid]);
  t.false(fs.existsSync(stale.dir));
  for (const img of [fresh, staleOrigin, child, oldActive]) t.true(fs.existsSync(img.dir), img.uuid);
  t.false(fs.existsSync(path.join(root, '.deleted', stale.uuid)), 'never active: no tombstone');
});
