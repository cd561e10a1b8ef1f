/*
 * The `mirrors` configuration key, and the real server process running a
 * configured mirror on its interval with progress in its log.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { buildConfig, ConfigError } from '../../src/config/config.js';
import { tmpDir } from '../helpers/images.js';
import { startServer, waitFor } from '../helpers/server.js';
import { spawnServer } from '../cli/spawn.js';
import { publish } from './kit.js';

const at = (dir: string) => path.join(dir, 'config.json');

test('mirrors: defaults, filters as a string or a list, ca_file relative to the config file', (t) => {
  const dir = tmpDir(t);
  t.deepEqual(buildConfig({}, at(dir)).mirrors, []);
  const config = buildConfig({
    mirrors: [
      { url: 'https://images.smartos.org' },
      { url: 'https://datasets.example.org/datasets', type: 'dsapi', name: ['base-64', '~minimal'], os: 'smartos',
        image_type: 'zone-dataset', interval_minutes: 360, ca_file: 'ca/private.pem' },
    ],
  }, at(dir));
  t.deepEqual(config.mirrors[0], { url: 'https://images.smartos.org', type: 'imgapi', interval_minutes: 60 });
  t.is(config.mirrors[1]!.ca_file, path.join(dir, 'ca/private.pem'));
  t.deepEqual(config.mirrors[1]!.name, ['base-64', '~minimal']);
  t.true(Object.isFrozen(config.mirrors[1]));
});

test('mirrors: a bad entry stops the start with a message naming it', (t) => {
  const dir = tmpDir(t);
  const bad = (mirror: Record<string, unknown>) => t.throws(() => buildConfig({ mirrors: [mirror] }, at(dir)), { instanceOf: ConfigError });
  t.regex(bad({ url: 'https://x', type: 'docker' })!.message, /"mirrors\.0\.type" must be equal to one of the allowed values/);
  t.regex(bad({ url: 'ftp://x' })!.message, /"mirrors\.0\.url"/);
  t.regex(bad({ type: 'imgapi' })!.message, /must have required property 'url'/);
  t.regex(bad({ url: 'https://x', interval_minutes: 0 })!.message, /"mirrors\.0\.interval_minutes" must be > 0/);
  t.regex(bad({ url: 'https://x', filter: 'x' })!.message, /unknown key "filter" in "mirrors\.0"/);
  t.regex(bad({ url: 'https://x', name: [] })!.message, /"mirrors\.0\.name"/);
});

test('the server process mirrors a configured upstream on its interval and logs it', async (t) => {
  const upstream = await startServer(t);
  const image = await publish(upstream, { name: 'scheduled', version: '1' });
  const serveDir = tmpDir(t);
  const child = await spawnServer(t, { serve_dir: serveDir, mirrors: [{ url: upstream.url, interval_minutes: 0.02 }] });
  await waitFor(() => child.logs.some((l) => l.msg === 'mirror: run finished'), 15_000);
  t.true(fs.existsSync(path.join(serveDir, image.uuid, 'manifest.json')));
  const copied = child.logs.find((l) => l.msg === 'mirror: image copied')!;
  t.is(copied.uuid, image.uuid);
  t.is(copied.component, 'mirror');
  t.is(copied.upstream, upstream.url);
  t.true(child.logs.some((l) => l.msg === 'mirror: scheduled'));
  // Later runs find it there.
  const later = await publish(upstream, { name: 'scheduled', version: '2' });
  await waitFor(() => fs.existsSync(path.join(serveDir, later.uuid, 'manifest.json')), 15_000);
  // The server's index picks the copy up and serves it.
  await waitFor(async () => (await fetch(`${child.where}/images/${later.uuid}`)).status === 200, 5000);
  const body = await (await fetch(`${child.where}/images/${later.uuid}`)).json() as Record<string, unknown>;
  t.is(body.published_at, later.manifest.published_at);
});
