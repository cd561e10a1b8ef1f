/*
 * Mirroring one channel: an upstream with channels read through
 * ?channel= in its URL, copied into one channel of ours (the mirror's
 * `channel`, else our default), from the configuration and from
 * `image-server mirror --channel`.
 */
import path from 'node:path';
import test from 'ava';
import { buildConfig, ConfigError } from '../../src/config/config.js';
import { Channels } from '../../src/manifest/channels.js';
import { specOf } from '../../src/mirror/service.js';
import { tmpDir } from '../helpers/images.js';
import { startServer } from '../helpers/server.js';
import { mirrorInto, runCli } from '../mirror/kit.js';
import { writeConfig } from '../cli/spawn.js';
import { call, parse } from '../publish/kit.js';
import { CHANNELS, channelServer, publishTo, v2Json } from './kit.js';

async function inChannel(url: string, channel: string): Promise<string[]> {
  const res = await call(url, 'GET', `/images?channel=${channel}`, { auth: null, headers: { 'accept-version': '~2' } });
  return parse<{ uuid: string }[]>(res).map((m) => m.uuid).sort();
}

test('an upstream\'s dev channel, mirrored into our dev channel: only its dev images, and only in dev', async (t) => {
  const upstream = await channelServer(t);
  const dev = await publishTo(upstream.url, 'channel=dev');
  const release = await publishTo(upstream.url, 'channel=release');
  const local = await channelServer(t);
  const mirror = mirrorInto(t, local, { url: `${upstream.url}?channel=dev`, type: 'imgapi', channel: 'dev' });
  const report = await mirror.run();
  t.deepEqual(report.results.map((i) => [i.uuid, i.outcome]), [[dev.uuid, 'copied']]);
  t.deepEqual(await inChannel(local.url, 'dev'), [dev.uuid]);
  t.deepEqual(await inChannel(local.url, 'release'), []);
  t.false(local.store.get(release.uuid) !== undefined, 'the release image is not copied');
  t.deepEqual(local.store.get(dev.uuid)?.manifest.channels, ['dev']);
});

test('an image the upstream promoted to release joins our release channel without a download; a dry run only says so', async (t) => {
  const upstream = await channelServer(t);
  const dev = await publishTo(upstream.url, 'channel=dev');
  const local = await channelServer(t);
  const channels = new Channels(CHANNELS);
  await mirrorInto(t, local, { url: `${upstream.url}?channel=dev`, type: 'imgapi', channel: 'dev' }, { channels }).run();
  t.is((await call(upstream.url, 'POST', `/images/${dev.uuid}?action=channel-add&channel=dev`, v2Json({ channel: 'release' }))).status, 200);

  const release = mirrorInto(t, local, { url: `${upstream.url}?channel=release`, type: 'imgapi', channel: 'release' }, { channels });
  const dry = await release.run({ dryRun: true });
  t.deepEqual(dry.results.map((i) => [i.uuid, i.outcome]), [[dev.uuid, 'channel-planned']]);
  t.deepEqual(await inChannel(local.url, 'release'), [], 'a dry run changes nothing');
  const report = await release.run();
  t.deepEqual(report.results.map((i) => [i.uuid, i.outcome, i.bytes]), [[dev.uuid, 'channel-added', undefined]]);
  t.deepEqual(await inChannel(local.url, 'release'), [dev.uuid]);
  t.deepEqual(await inChannel(local.url, 'dev'), [dev.uuid]);
  t.deepEqual(local.store.get(dev.uuid)?.manifest.channels, ['dev', 'release']);
  const again = await release.run();
  t.deepEqual(again.results.map((i) => [i.uuid, i.outcome]), [[dev.uuid, 'present']], 'a second run has nothing to do');
});

test('a configured mirror lands in its channel, else in the default; a channel we do not have is refused', (t) => {
  const dir = tmpDir(t, 'imgsrv-conf-');
  const load = (extra: Record<string, unknown>) => buildConfig({ serve_dir: dir, ...extra }, path.join(dir, 'config.json'));
  const url = 'https://images.example.org?channel=experimental';
  const config = load({ channels: CHANNELS, mirrors: [{ url }, { url, channel: 'dev' }] });
  t.deepEqual(config.mirrors.map((m) => specOf(m).channel), ['release', 'dev']);
  t.throws(() => load({ channels: CHANNELS, mirrors: [{ url, channel: 'nope' }] }), { instanceOf: ConfigError, message: /"nope", which is not in "channels"/ });
  t.throws(() => load({ mirrors: [{ url, channel: 'dev' }] }), { instanceOf: ConfigError, message: /needs "channels" configured/ });
  t.throws(() => load({ channels: [{ name: 'a', description: 'x' }], mirrors: [{ url }] }), { instanceOf: ConfigError, message: /no channel is the default/ });
  t.is(specOf(load({ mirrors: [{ url }] }).mirrors[0]!).channel, undefined, 'no channels: as before');
});

test('image-server mirror --channel copies into that channel; without it, into the default', async (t) => {
  const upstream = await channelServer(t);
  const dev = await publishTo(upstream.url, 'channel=dev');
  const local = tmpDir(t);
  const config = writeConfig(t, { serve_dir: local, channels: CHANNELS });
  const r = await runCli(t, ['--config', config, 'mirror', `${upstream.url}?channel=dev`, '--channel', 'dev']);
  t.is(r.status, 0, r.stderr);
  const server = await startServer(t, { serveDir: local, config: { channels: CHANNELS } });
  t.deepEqual(await inChannel(server.url, 'dev'), [dev.uuid]);
  const release = await publishTo(upstream.url, 'channel=release');
  t.is((await call(upstream.url, 'POST', `/images/${dev.uuid}?action=channel-add&channel=dev`, v2Json({ channel: 'release' }))).status, 200);
  const again = await runCli(t, ['--config', config, 'mirror', upstream.url]);
  t.is(again.status, 0, again.stderr);
  t.regex(again.stdout, new RegExp(`^added ${dev.uuid} .* to channel release \\(here already\\)$`, 'm'));
  t.regex(again.stdout, /1 copied, 0 already here, 1 added to channel release, 0 failed/);
  await server.store.rescan();
  t.deepEqual(await inChannel(server.url, 'release'), [release.uuid, dev.uuid].sort(), "the upstream's default into ours, the promoted image too");
  const refused = await runCli(t, ['--config', config, 'mirror', upstream.url, '--channel', 'nope']);
  t.not(refused.status, 0);
  t.regex(refused.stderr, /unknown channel: nope/);
});
