/*
 * import-image through a real sshd and the authorized_keys forced command
 * (`image-server --config PINNED ssh-command`): what the client types
 * arrives exactly, nothing the client types runs anything else, and a
 * running server shows what was published at its next poll.
 */
import fs from 'node:fs';
import path from 'node:path';
import { waitFor } from '../helpers/server.js';
import { tmpDir } from '../helpers/images.js';
import { spawnServer } from '../cli/spawn.js';
import {
  fingerprint, imageDirs, imageFile, lines, randomGzip, readManifest, served, sha1, UUID_LINE,
} from '../gz/kit.js';
import { sealLine } from '../../src/cli/seal.js';
import { shquote, sshTest, startSshd } from './sshd.js';
import { assertConforms } from '../helpers/conformance.js';

const TRICKY = [
  'plain words with  two spaces',
  "it's got 'single' quotes",
  'and "double" quotes',
  'semi; colons; rm -rf /',
  'dollars $x ${HOME} $(id) and `backticks` \\ backslash',
  'all at once: it\'s "$x"; `id` && | > < * ? ~ # !',
];

sshTest('a description with spaces, quotes, ;, $ and backticks arrives exactly as typed', async (t) => {
  const s = served(t);
  const sshd = await startSshd(t, s.configFile);
  for (const [i, description] of TRICKY.entries()) {
    const data = randomGzip();
    const name = `tricky name ${i}`;
    const command = ['import-image', name, '1.0.0', description].map(shquote).join(' ');
    const r = await sshd.ssh(command, data);
    t.is(r.status, 0, `${description}: ${r.stderr}`);
    t.regex(r.stdout, UUID_LINE);
    t.is(r.stderr, '');
    const uuid = r.stdout.trim();
    const m = readManifest(s.serveDir, uuid);
    t.is(m.description, description);
    t.is(m.name, name);
    t.true(imageFile(s.serveDir, uuid).equals(data));
    t.is((m.files as { sha1: string }[])[0]!.sha1, sha1(data));
  }
  // Double quotes work too; inside them nothing is expanded.
  const r = await sshd.ssh('import-image dq 1.0.0 "say \\"hi\\" to $USER; `id`"', randomGzip());
  t.is(r.status, 0, r.stderr);
  t.is(readManifest(s.serveDir, r.stdout.trim()).description, 'say "hi" to $USER; `id`');
});

sshTest('options pass through: --tag, --requirement, --set, --type, --os, --origin, and a sealed stream', async (t) => {
  const s = served(t);
  const sshd = await startSshd(t, s.configFile);
  const base = await sshd.ssh(['import-image', 'base', '1.0.0', 'base'].map(shquote).join(' '), randomGzip());
  t.is(base.status, 0, base.stderr);
  const origin = base.stdout.trim();
  const data = randomGzip();
  const stream = Buffer.concat([data, Buffer.from(sealLine(data.length, sha1(data)))]);
  const args = [
    'import-image', '--sealed', '--type', 'lx-dataset', '--os', 'linux', '--origin', origin,
    '--tag', 'kernel_version=3.10', '--requirement', 'brand="lx"',
    '--requirement', 'min_platform={"7.0":"20240104T000000Z"}', '--set', 'homepage="https://example.com/x"',
    '--', 'lx', '1.0.0', '-a description that starts with a dash',
  ];
  const r = await sshd.ssh(args.map(shquote).join(' '), stream);
  t.is(r.status, 0, r.stderr);
  const m = readManifest(s.serveDir, r.stdout.trim());
  t.like(m, {
    type: 'lx-dataset', os: 'linux', origin, description: '-a description that starts with a dash',
    tags: { kernel_version: '3.10' }, requirements: { brand: 'lx', min_platform: { '7.0': '20240104T000000Z' } },
    homepage: 'https://example.com/x',
  });
  t.true(imageFile(s.serveDir, r.stdout.trim()).equals(data), 'the seal is not stored');
  // --version answers without a stream: what an operator tries first
  const version = await sshd.ssh('import-image --version');
  t.is(version.status, 0, version.stderr);
  t.regex(version.stdout, /^\d+\.\d+\.\d+\n$/);
  // --check answers without reading a stream too
  const taken = await sshd.ssh(['import-image', '--check', 'lx', '1.0.0', 'again'].map(shquote).join(' '));
  t.is(taken.status, 1);
  t.regex(taken.stderr, /^import-image: lx 1\.0\.0 is already taken by image/);
});

sshTest('injection attempts are refused with a clear message and harm nothing', async (t) => {
  const s = served(t);
  const sshd = await startSshd(t, s.configFile);
  const canary = tmpDir(t, 'imgsrv-canary-');
  fs.writeFileSync(path.join(canary, 'alive'), 'yes');
  const touched = path.join(canary, 'pwned');
  const before = fingerprint(s.serveDir);
  const attempts: [string, RegExp][] = [
    [`import-image a 1.0.0 d; rm -rf ${canary}`, /refused: ";" must be quoted/],
    [`import-image a 1.0.0 d;rm -rf ${canary}`, /refused: ";" must be quoted/],
    [`import-image a 1.0.0 \`rm -rf ${canary}\``, /refused: "`" must be quoted/],
    [`import-image a 1.0.0 $(touch ${touched})`, /refused: "\$" must be quoted/],
    [`import-image a 1.0.0 d && rm -rf ${canary}`, /refused: "&" must be quoted/],
    [`import-image a 1.0.0 d || rm -rf ${canary}`, /refused: "\|" must be quoted/],
    [`import-image a 1.0.0 d | rm -rf ${canary}`, /refused: "\|" must be quoted/],
    [`import-image a 1.0.0 d > ${touched}`, /refused: ">" must be quoted/],
    [`import-image a 1.0.0 d\nrm -rf ${canary}`, /refused: a newline must be quoted/],
    [`import-image a 1.0.0 'd`, /refused: unterminated single quote/],
    ['cat /etc/passwd', /refused: this key runs only import-image, not "cat"/],
    [`rm -rf ${canary}`, /refused: this key runs only import-image, not "rm"/],
    [`sh -c 'touch ${touched}'`, /refused: this key runs only import-image, not "sh"/],
    ['image-server serve', /refused: this key runs only import-image/],
    ['../import-image a 1.0.0 d', /refused: this key runs only import-image/],
    ['import-image --config /other/config.json a 1.0.0 d', /refused: --config: the configuration is set by the key/],
    ['import-image --config=/other/config.json a 1.0.0 d', /refused: --config=\/other\/config.json/],
    ['import-image -c /other/config.json a 1.0.0 d', /refused: -c: the configuration is set by the key/],
    ['import-image --manifest /etc/passwd a 1.0.0 d', /refused: --manifest names a file on the server/],
  ];
  for (const [command, message] of attempts) {
    const r = await sshd.ssh(command, randomGzip());
    t.not(r.status, 0, command);
    t.is(r.stdout, '', command);
    t.is(lines(r.stderr).length, 1, `${command}: ${r.stderr}`);
    t.regex(r.stderr, message, command);
    t.regex(r.stderr, /^image-server: /, command);
  }
  // No command at all: the key says what it is for.
  const bare = await sshd.ssh(null, randomGzip());
  t.not(bare.status, 0);
  t.regex(bare.stderr, /this key only publishes images: ssh HOST import-image NAME VERSION DESCRIPTION < stream/);

  t.true(fs.existsSync(path.join(canary, 'alive')), 'the canary survived');
  t.false(fs.existsSync(touched), 'nothing was touched');
  t.deepEqual(imageDirs(s.serveDir), [], 'nothing was published');
  t.deepEqual(fingerprint(s.serveDir), before);
  assertConforms(t, s.serveDir, 'when done');
});

sshTest('a running server shows an image published over ssh at its next poll', async (t) => {
  const s = served(t);
  const server = await spawnServer(t, { serve_dir: s.serveDir });
  const sshd = await startSshd(t, s.configFile);
  const r = await sshd.ssh(['import-image', 'live', '1.0.0', 'seen at once'].map(shquote).join(' '), randomGzip());
  t.is(r.status, 0, r.stderr);
  const uuid = r.stdout.trim();
  // Polled every second (the default); how long it took is logged, not asserted.
  t.log(`served ${await waitFor(async () => (await fetch(`${server.where}/images/${uuid}`)).status === 200, 15_000)} ms after import-image returned`);
  const m = (await (await fetch(`${server.where}/images/${uuid}`)).json()) as Record<string, unknown>;
  t.is(m.description, 'seen at once');
  t.is(m.state, 'active');
});

sshTest('over ssh a cut or unsealed stream is refused and leaves nothing', async (t) => {
  const s = served(t);
  const sshd = await startSshd(t, s.configFile);
  const data = randomGzip(256 * 1024);
  const first = await sshd.ssh(['import-image', 'first', '1.0.0', 'first'].map(shquote).join(' '), randomGzip());
  t.is(first.status, 0, first.stderr);
  const before = fingerprint(s.serveDir);
  const cases: [Buffer, RegExp][] = [
    [data, /the stream ended without its seal/],
    [Buffer.concat([data, Buffer.from(sealLine(data.length, sha1(data))).subarray(0, 40)]), /without its seal/],
    [Buffer.concat([data.subarray(0, 1000), Buffer.from(sealLine(data.length, sha1(data)))]), /does not match its seal/],
  ];
  for (const [stream, message] of cases) {
    const r = await sshd.ssh(['import-image', '--sealed', 'cut', '1.0.0', 'cut'].map(shquote).join(' '), stream);
    t.not(r.status, 0);
    t.is(lines(r.stderr).length, 1, r.stderr);
    t.regex(r.stderr, message);
  }
  t.deepEqual(fingerprint(s.serveDir), before);
});
