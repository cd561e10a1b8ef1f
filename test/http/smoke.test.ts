import test from 'ava';
import { startServer } from '../helpers/server.js';
import { tmpDir, v2Manifest, writeImage } from '../helpers/images.js';
import { randomBytes } from 'node:crypto';

test('GET /ping answers imgapi: true', async (t) => {
  const { url } = await startServer(t);
  const res = await fetch(`${url}/ping`);
  t.is(res.status, 200);
  t.deepEqual(await res.json(), { ping: 'pong', version: '0.1.0', imgapi: true });
});

test('an image on disk is listed and its file downloads byte for byte', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(4096);
  const img = writeImage(root, v2Manifest(bytes), { bytes });
  const srv = await startServer(t, { serveDir: root });
  const { url } = srv;
  const list = (await (await fetch(`${url}/images`)).json()) as { uuid: string }[];
  t.deepEqual(list.map((m) => m.uuid), [img.uuid]);
  const res = await fetch(`${url}/images/${img.uuid}/file`);
  t.is(res.headers.get('content-length'), '4096');
  t.true(Buffer.from(await res.arrayBuffer()).equals(bytes));
});
