import { randomBytes } from 'node:crypto';
import test from 'ava';
import * as promClient from 'prom-client';
import { Counter, Gauge, Registry } from '../../src/metrics.js';
import { sha1, tmpDir, v2Manifest, writeImage } from '../helpers/images.js';
import { OPERATOR_AUTH, startServer } from '../helpers/server.js';

// Values are Go floats: NaN and Inf in any case (prom-client writes "Nan").
const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|nan|[+-]?inf)$/i;

/** Parses Prometheus text exposition strictly: every line is a comment or a sample. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const m = SAMPLE_RE.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${line}`);
    samples.set(line.slice(0, line.lastIndexOf(' ')), Number(m[4]));
  }
  return samples;
}

async function scrape(url: string, headers: Record<string, string> = {}): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`, { headers });
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
  return parse(await res.text());
}

test('GET /metrics is Prometheus text, and its counters move as requests are made', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(100_000);
  const img = writeImage(root, v2Manifest(bytes), { bytes, md5: true });
  writeImage(root, v2Manifest(bytes, { state: 'disabled', disabled: true }), { bytes });
  const { url } = await startServer(t, { serveDir: root });
  const before = await scrape(url);
  const ping = 'image_server_http_requests_total{route="Ping",method="GET",status="200"}';
  const file = 'image_server_http_requests_total{route="GetImageFile",method="GET",status="200"}';
  const fileBytes = 'image_server_http_response_bytes_total{route="GetImageFile"}';
  for (let i = 0; i < 3; i++) await (await fetch(`${url}/ping`)).arrayBuffer();
  t.is(sha1(Buffer.from(await (await fetch(`${url}/images/${img.uuid}/file`)).arrayBuffer())), img.sha1);
  await (await fetch(`${url}/images/nope`)).arrayBuffer();
  const after = await scrape(url);
  t.is((after.get(ping) ?? 0) - (before.get(ping) ?? 0), 3);
  t.is((after.get(file) ?? 0) - (before.get(file) ?? 0), 1);
  t.true((after.get(fileBytes) ?? 0) - (before.get(fileBytes) ?? 0) >= bytes.length, 'the file bytes are counted');
  t.is(after.get('image_server_http_requests_total{route="GetImage",method="GET",status="404"}'), 1);
  t.is(after.get('image_server_images{state="active"}'), 1);
  t.is(after.get('image_server_images{state="disabled"}'), 1);
  t.is(after.get('image_server_downloads_in_flight'), 0);
  t.true(after.has('image_server_index_rescan_seconds{kind="full"}'));
  t.true(after.has('image_server_process_resident_memory_bytes'));
});

test('the metric classes loaded without prom-client\'s index are the ones it exports', (t) => {
  t.is(Registry, promClient.Registry);
  t.is(Counter, promClient.Counter);
  t.is(Gauge, promClient.Gauge);
});

test('imports succeeded and failed are counted', async (t) => {
  const { url } = await startServer(t);
  const auth = { authorization: OPERATOR_AUTH };
  const good = randomBytes(500);
  const form = (bytes: Buffer, sha: string) => {
    const fd = new FormData();
    const m = v2Manifest(bytes);
    (m.files as { sha1: string }[])[0]!.sha1 = sha;
    fd.append('manifest', JSON.stringify(m));
    fd.append('file', new Blob([bytes]), 'f.gz');
    return fd;
  };
  t.is((await fetch(`${url}/images?activate=true`, { method: 'POST', headers: auth, body: form(good, sha1(good)) })).status, 200);
  t.is((await fetch(`${url}/images?activate=true`, { method: 'POST', headers: auth, body: form(good, '0'.repeat(40)) })).status, 400);
  const m = await scrape(url);
  t.is(m.get('image_server_imports_total{result="succeeded"}'), 1);
  t.is(m.get('image_server_imports_total{result="failed"}'), 1);
});

test('metrics can be put behind credentials, or turned off', async (t) => {
  const guarded = await startServer(t, { config: { metrics: 'auth' } });
  t.is((await fetch(`${guarded.url}/metrics`)).status, 401);
  t.true((await scrape(guarded.url, { authorization: OPERATOR_AUTH })).size > 0);
  const off = await startServer(t, { config: { metrics: 'off' } });
  t.is((await fetch(`${off.url}/metrics`)).status, 404);
});
