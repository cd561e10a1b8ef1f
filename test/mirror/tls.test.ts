/*
 * TLS stays verified: an upstream whose certificate comes from a private
 * CA is refused (at once, not retried) until ca_file names that CA, which
 * is trusted besides the system's roots, never instead of them.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { count, failed } from '../../src/mirror/report.js';
import { tmpDir } from '../helpers/images.js';
import { startServer } from '../helpers/server.js';
import { dsapidImgapiImage, imgapiHandler, mirrorInto, runCli, standIn } from './kit.js';
import { SERVER_CERT_PEM, SERVER_KEY_PEM, TEST_CA_PEM } from './tls-material.js';

test('a private CA is refused until ca_file adds it; then the mirror copies over https', async (t) => {
  const image = dsapidImgapiImage({ name: 'secure' }, 256);
  const upstream = await standIn(t, imgapiHandler([image]), { key: SERVER_KEY_PEM, cert: SERVER_CERT_PEM });
  const local = await startServer(t);

  const refused = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }).run();
  t.true(failed(refused));
  t.regex(refused.error!, /TLS certificate not trusted/);
  t.is(upstream.requests.length, 0, 'no request was sent over the unverified connection');

  const caFile = path.join(tmpDir(t), 'private-ca.pem');
  fs.writeFileSync(caFile, TEST_CA_PEM);
  const report = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi', caFile }).run();
  t.false(failed(report), JSON.stringify({ error: report.error, results: report.results }));
  t.is(count(report, 'copied'), 1);
  t.truthy(local.store.get(String(image.manifest.uuid)));

  // The same through the command line.
  const serveDir = tmpDir(t);
  const config = path.join(tmpDir(t), 'config.json');
  fs.writeFileSync(config, JSON.stringify({ serve_dir: serveDir }));
  const without = await runCli(t, ['--config', config, 'mirror', upstream.url]);
  t.is(without.status, 1);
  t.regex(without.stderr, /TLS certificate not trusted/);
  const withCa = await runCli(t, ['--config', config, 'mirror', upstream.url, '--ca-file', caFile]);
  t.is(withCa.status, 0, withCa.stderr);
  t.regex(withCa.stdout, /^1 copied/m);
});

test('a CA file that cannot be read is an error before any request', (t) => {
  const error = t.throws(() => mirrorInto(t, { store: null!, writer: null!, serveDir: '' },
    { url: 'https://127.0.0.1:1', type: 'imgapi', caFile: '/nonexistent/ca.pem' }));
  t.regex(error!.message, /cannot read the CA file \/nonexistent\/ca\.pem: ENOENT/);
});
