/*
 * Channels from the command line: import-image --channel (what mkimg
 * passes through), and `image-server images channel-add|channel-remove|
 * list --channel` on the serve_dir of a configuration with channels.
 */
import test from 'ava';
import { runCli } from '../cli/spawn.js';
import { importImage, imageDirs, randomGzip, readManifest, served, UUID_LINE } from '../gz/kit.js';

const CHANNELS = [
  { name: 'release', description: 'tested images', default: true },
  { name: 'dev', description: 'fresh builds' },
];

test('import-image lands in --channel, else the default; an unknown channel publishes nothing', async (t) => {
  const s = served(t, { channels: CHANNELS });
  const dev = await importImage(s, ['--channel', 'dev', 'chan', '1.0.0', 'into dev'], randomGzip());
  t.is(dev.status, 0, dev.stderr);
  t.regex(dev.stdout, UUID_LINE);
  t.deepEqual(readManifest(s.serveDir, dev.stdout.trim()).channels, ['dev']);
  const plain = await importImage(s, ['chan', '1.0.1', 'into the default'], randomGzip());
  t.is(plain.status, 0, plain.stderr);
  t.deepEqual(readManifest(s.serveDir, plain.stdout.trim()).channels, ['release']);
  const bad = await importImage(s, ['--channel', 'nope', 'chan', '1.0.2', 'nowhere'], randomGzip());
  t.not(bad.status, 0);
  t.regex(bad.stderr, /unknown channel: nope/);
  t.is(imageDirs(s.serveDir).length, 2);
});

test('import-image --channel on a server without channels is refused', async (t) => {
  const s = served(t);
  const r = await importImage(s, ['--channel', 'dev', 'chan', '1.0.0', 'd'], randomGzip());
  t.not(r.status, 0);
  t.regex(r.stderr, /this server has no channels/);
  t.deepEqual(imageDirs(s.serveDir), []);
});

test('images channel-add and channel-remove change membership; the last channel cannot be removed; list --channel filters', async (t) => {
  const s = served(t, { channels: CHANNELS });
  const r = await importImage(s, ['--channel', 'dev', 'chan', '1.0.0', 'd'], randomGzip());
  t.is(r.status, 0, r.stderr);
  const uuid = r.stdout.trim();
  const cli = (...args: string[]) => runCli(t, ['--config', s.configFile, 'images', ...args]);

  t.is(cli('list', '--channel', 'release').stdout.trim(), '');
  t.true(cli('list', '--channel', 'dev').stdout.startsWith(uuid));
  const added = cli('channel-add', uuid, 'release');
  t.is(added.status, 0, added.stderr);
  t.is(added.stdout, `${uuid} channels: dev, release\n`);
  t.true(cli('list', '--channel', 'release').stdout.startsWith(uuid));
  t.deepEqual(JSON.parse(cli('show', uuid).stdout).channels, ['dev', 'release']);

  const removed = cli('channel-remove', uuid, 'dev');
  t.is(removed.status, 0, removed.stderr);
  t.deepEqual(readManifest(s.serveDir, uuid).channels, ['release']);
  const last = cli('channel-remove', uuid, 'release');
  t.not(last.status, 0);
  t.regex(last.stderr, /in no channel but release: delete it instead/);
  const unknown = cli('channel-add', uuid, 'nope');
  t.not(unknown.status, 0);
  t.regex(unknown.stderr, /unknown channel nope: the channels are release, dev/);
  t.deepEqual(readManifest(s.serveDir, uuid).channels, ['release'], 'refusals changed nothing');
});
