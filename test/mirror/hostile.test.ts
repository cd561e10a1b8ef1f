/*
 * Upstreams whose listing is hostile or broken: 30 MiB of junk elements
 * around two good manifests, and a listing that never ends. The listing is
 * parsed element by element while it arrives (the junk is judged before
 * the upstream has even finished the array), the mirrored server's /ping
 * keeps answering throughout, the good images are copied, and the log
 * names a bounded number of bad elements, then counts the rest.
 */
import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import test from 'ava';
import type { ListingProgress } from '../../src/mirror/catalog.js';
import { count } from '../../src/mirror/report.js';
import { startServer, waitFor, type TestServer } from '../helpers/server.js';
import { request } from '../http/kit.js';
import { assertOnlyWholeImages, captureLog, dsapidImgapiImage, imgapiHandler, mirrorInto, sendJson, standIn } from './kit.js';

const MIB = 1024 * 1024;

/** Kinds of junk a broken upstream lists, each a bad manifest for its own reason. */
function junkBlock(): { text: string; elements: number } {
  const kinds = [
    '{"uuid":"not-a-uuid","name":"junk"}',
    `{"v":2,"uuid":"${randomUUID()}","name":"nofile","files":[]}`,
    `{"v":2,"uuid":"${randomUUID()}","origin":"../../../etc/passwd","files":[{"sha1":"${'a'.repeat(40)}","size":1}]}`,
    '12',
    '"a string"',
    '{"uuid":}',
    '[[[{"deep":[1,2,{"x":"]]]}"}]}]]]',
  ];
  const elements: string[] = [];
  let size = 0;
  while (size < MIB) {
    const kind = kinds[elements.length % kinds.length]!;
    elements.push(kind);
    size += kind.length + 1;
  }
  return { text: elements.join(','), elements: elements.length };
}

/** Writes `text`, waiting while the client does not read (so the upstream never runs ahead of the mirror). */
function write(res: http.ServerResponse, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (res.destroyed) return reject(new Error('connection closed'));
    if (res.write(text)) return resolve();
    const drained = () => {
      res.off('close', closed);
      resolve();
    };
    const closed = () => {
      res.off('drain', drained);
      reject(new Error('connection closed'));
    };
    res.once('drain', drained);
    res.once('close', closed);
  });
}

/** Pings `server` back to back until stopped; counts answers. */
function pinger(server: TestServer): { ok: () => number; bad: () => number; stop: () => Promise<void> } {
  let ok = 0;
  let bad = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const res = await request(`${server.url}/ping`).catch(() => undefined);
      if (res?.status === 200) ok++;
      else bad++;
    }
  })();
  return { ok: () => ok, bad: () => bad, stop: async () => {
    stopped = true;
    await loop;
  } };
}

test('30 MiB of junk around two good manifests: parsed while it arrives, /ping answers, the good ones are copied, the log is bounded',
  async (t) => {
    const good = [dsapidImgapiImage({ name: 'good-a' }), dsapidImgapiImage({ name: 'good-b' })];
    const block = junkBlock();
    const blocks = 30;
    const oversize = `{"uuid":"${randomUUID()}","description":"${'x'.repeat(2 * MIB)}"}`;
    const junk = blocks * block.elements + 1;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const files = imgapiHandler(good);
    const upstream = await standIn(t, async (req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname !== '/images') return files(req, res);
      if (url.searchParams.has('marker')) return sendJson(res, []);
      res.writeHead(200, { 'content-type': 'application/json' });
      await write(res, `[${JSON.stringify(good[0]!.manifest)},${oversize}`);
      for (let i = 0; i < blocks; i++) await write(res, `,${block.text}`);
      // The array stays open until the test has seen every junk element judged.
      await held;
      res.end(`,${JSON.stringify(good[1]!.manifest)}]`);
    });
    const local = await startServer(t);
    const { log, records } = captureLog('info');
    const progress: ListingProgress[] = [];
    const mirror = mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }, {}, log);
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const pings = pinger(local);
    const rssBefore = process.memoryUsage().rss;
    const run = mirror.run({ listener: { listing: (p) => progress.push(p) } });
    let answeredWhileParsing: number | undefined;
    try {
      await waitFor(() => (progress.at(-1)?.rejected ?? 0) >= junk - 256, 120_000);
      answeredWhileParsing = pings.ok();
    } finally {
      release();
    }
    const report = await run;
    await pings.stop();
    delay.disable();
    t.log(`event loop: max delay ${Math.round(delay.max / 1e6)} ms; rss grew ${Math.round((process.memoryUsage().rss - rssBefore) / MIB)} MiB`);

    t.true(progress.length > 100, 'the listing was judged in many small steps');
    t.true((answeredWhileParsing ?? 0) > 0, '/ping answered while the junk was being parsed');
    t.is(pings.bad(), 0, 'every /ping was answered');
    t.is(report.error, undefined);
    t.is(report.rejected, junk, 'every junk element was turned down');
    t.is(count(report, 'copied'), 2, 'both good images were copied');
    for (const image of good) t.truthy(local.store.get(String(image.manifest.uuid)));
    const oneByOne = records.filter((r) => r.msg === 'mirror: upstream manifest cannot be mirrored');
    t.is(oneByOne.length, 20, 'the first bad elements are logged one by one');
    t.true(oneByOne.some((r) => /larger than 1048576 bytes/.test(String(r.err))), 'the oversize element is among them');
    const rest = records.filter((r) => /more upstream manifests cannot be mirrored/.test(String(r.msg)));
    t.deepEqual(rest.map((r) => r.count), [junk - 20], 'then one line counts the rest');
    t.true(records.length < 60, `${records.length} log lines`);
    t.true(oneByOne.every((r) => String(r.err).length < 200), 'a logged reason quotes junk only briefly');
    await assertOnlyWholeImages(t, local.serveDir);
  });

test('an endless listing ends at the listing budget; /ping answers meanwhile; nothing is copied', async (t) => {
  const block = junkBlock();
  let closed = false;
  const upstream = await standIn(t, async (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.on('close', () => (closed = true));
    try {
      await write(res, '[0');
      for (;;) await write(res, `,${block.text}`);
    } catch {
      // the mirror hung up
    }
  });
  const local = await startServer(t);
  const { log, records } = captureLog('info');
  const mirror = mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }, { maxListingBytes: 8 * MIB }, log);
  const pings = pinger(local);
  const report = await mirror.run();
  const answered = pings.ok();
  await pings.stop();
  t.regex(report.error ?? '', /the listing is larger than 8388608 bytes/);
  t.is(upstream.requests.length, 1, 'a listing over budget is not tried again');
  await waitFor(() => closed);
  t.true(answered > 0, '/ping answered during the run');
  t.is(pings.bad(), 0);
  t.is(count(report, 'copied'), 0);
  t.true(records.length < 60, `${records.length} log lines`);
  t.deepEqual(await assertOnlyWholeImages(t, local.serveDir), []);
});
