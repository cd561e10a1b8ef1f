import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { tmpDir, v2Manifest, writeImage } from '../helpers/images.js';
import { waitFor } from '../helpers/server.js';
import { spawnServer } from '../cli/spawn.js';

test('the background scrub logs a corrupt image and, with scrub_repair, disables it', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(50_000);
  const bad = writeImage(root, v2Manifest(bytes), { bytes, md5: true });
  const goodBytes = randomBytes(50_000);
  const good = writeImage(root, v2Manifest(goodBytes), { bytes: goodBytes, md5: true });
  const f = path.join(bad.dir, bad.fileName);
  const b = fs.readFileSync(f);
  b[10] = b[10]! ^ 1;
  fs.writeFileSync(f, b);
  // A round every ~0.4 s, at 50 MB/s.
  const child = await spawnServer(t, { serve_dir: root, scrub_rate_mb_s: 50, scrub_interval_hours: 0.0001, scrub_repair: true });
  await waitFor(() => child.logs.some((l) => l.msg === 'scrub: image is corrupt or incomplete' && l.uuid === bad.uuid), 10_000);
  const state = async (uuid: string) => ((await (await fetch(`${child.where}/images/${uuid}`)).json()) as { state: string }).state;
  await waitFor(async () => (await state(bad.uuid)) === 'disabled', 10_000);
  t.is(await state(good.uuid), 'active');
});
