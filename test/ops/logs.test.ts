/*
 * Logs are bunyan records (so `bunyan` reads them), one audit record per
 * request carrying its request id, and never a secret.
 */
import { randomBytes } from 'node:crypto';
import test from 'ava';
import { hashToken, newToken } from '../../src/credentials.js';
import { tmpDir, v2Manifest, writeImage } from '../helpers/images.js';
import { OPERATOR, OPERATOR_AUTH, startServer, waitFor } from '../helpers/server.js';

test('every log line is a bunyan record; every request has one audit record; no secret is logged', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(2000);
  const img = writeImage(root, v2Manifest(bytes), { bytes });
  const token = newToken();
  const server = await startServer(t, { serveDir: root, config: { tokens: { ci: hashToken(token) } } });
  const wrong = `Basic ${Buffer.from(`${OPERATOR.user}:not-${OPERATOR.password}`).toString('base64')}`;
  const requests: [string, RequestInit][] = [
    ['/ping', { headers: { 'x-request-id': 'my-request-1' } }],
    ['/images', {}],
    [`/images/${img.uuid}/file`, { headers: { authorization: OPERATOR_AUTH } }],
    [`/images/${img.uuid}?action=disable`, { method: 'POST', headers: { authorization: `Bearer ${token}` } }],
    ['/images', { headers: { authorization: wrong } }],
    ['/nope', {}],
  ];
  const ids: string[] = [];
  for (const [p, init] of requests) {
    const res = await fetch(`${server.url}${p}`, init);
    await res.arrayBuffer();
    ids.push(res.headers.get('x-request-id')!);
  }
  t.is(ids[0], 'my-request-1', 'a sane x-request-id is honoured and echoed');
  t.true(ids.slice(1).every((id) => /^[0-9a-f-]{36}$/.test(id)), 'else one is made up');
  // The audit record is written when the response has gone out, which may be after the client has it.
  await waitFor(() => server.logs.filter((r) => r.audit === true).length >= requests.length);

  for (const rec of server.logs) {
    t.is(rec.name, 'image-server');
    t.is(typeof rec.hostname, 'string');
    t.is(rec.pid, process.pid);
    t.true([10, 20, 30, 40, 50, 60].includes(rec.level as number));
    t.is(typeof rec.msg, 'string');
    t.regex(String(rec.time), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    t.is(rec.v, 0);
  }
  const audits = server.logs.filter((r) => r.audit === true);
  t.deepEqual(audits.map((a) => a.req_id).sort(), [...ids].sort(), 'exactly one audit record per request');
  const byId = new Map(audits.map((a) => [a.req_id, a]));
  t.like(byId.get(ids[2]!), { route: 'GetImageFile', method: 'GET', status: 200, user: OPERATOR.user, complete: true });
  t.true((byId.get(ids[2]!)!.bytes as number) >= bytes.length);
  t.like(byId.get(ids[3]!), { route: 'ImageAction', status: 200, user: 'ci' });
  t.like(byId.get(ids[4]!), { status: 401, user: null });
  t.like(byId.get(ids[5]!), { route: null, status: 404 });
  for (const a of audits) {
    t.is(typeof a.latency_ms, 'number');
    t.is(typeof a.remote, 'string');
  }
  const everything = JSON.stringify(server.logs);
  for (const secret of [OPERATOR.password, token, OPERATOR_AUTH.split(' ')[1]!, wrong.split(' ')[1]!]) {
    t.false(everything.includes(secret), 'a secret reached the log');
  }
});
