import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import test from 'ava';
import { tmpDir, v2Manifest, writeImage } from '../helpers/images.js';
import { startServer, waitFor } from '../helpers/server.js';

test('a paging marker naming an image deleted since the last page still pages on', async (t) => {
  const root = tmpDir(t);
  const images = [0, 1, 2].map(() => {
    const bytes = randomBytes(10);
    return writeImage(root, v2Manifest(bytes), { bytes });
  });
  const server = await startServer(t, { serveDir: root });
  fs.rmSync(images[1]!.dir, { recursive: true });
  await waitFor(async () => (await fetch(`${server.url}/images/${images[1]!.uuid}`)).status === 404);
  const res = await fetch(`${server.url}/images?marker=${images[1]!.uuid}&limit=1000`);
  t.is(res.status, 200);
  t.deepEqual(((await res.json()) as { uuid: string }[]).map((m) => m.uuid), [images[2]!.uuid]);
  const unknown = await fetch(`${server.url}/images?marker=${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}`);
  t.is(unknown.status, 422, 'a uuid this server never had is still a bad marker');
});
