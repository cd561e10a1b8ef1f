import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { ConfigError, buildConfig, loadConfig } from '../src/config/config.js';
import { REPO_ROOT, tmpDir } from './helpers/images.js';

const at = '/etc/image-server/config.json';

test('defaults fill what the file leaves out; serve_dir resolves against the file', (t) => {
  const c = buildConfig({ serve_dir: 'images' }, at);
  t.is(c.serve_dir, '/etc/image-server/images');
  t.is(c.listen_port, 8080);
  t.is(c.prefix, 'http://');
  t.is(c.suffix, '');
  t.is(c.base_url, null);
  t.false(c.trust_proxy);
  t.is(c.loglevel, 'info');
  t.is(c.keep_alive_timeout_ms, 65_000);
  t.is(c.headers_timeout_ms, 60_000);
  t.is(c.idle_timeout_ms, 600_000);
  t.is(c.config_path, at);
});

test('a string listen_port is a unix socket path, resolved against the file', (t) => {
  t.is(buildConfig({ listen_port: 'run/image-server.sock' }, at).listen_port, '/etc/image-server/run/image-server.sock');
  t.is(buildConfig({ listen_port: '/var/tmp/image-server.sock' }, at).listen_port, '/var/tmp/image-server.sock');
});

test('the loaded configuration is frozen, nested objects included', (t) => {
  const c = buildConfig({ comments: { a: 'b' } }, at);
  t.true(Object.isFrozen(c));
  t.true(Object.isFrozen(c.comments));
  t.throws(() => {
    (c as { loglevel: string }).loglevel = 'debug';
  });
});

test('the original server config.json still loads unchanged', (t) => {
  const original = {
    comments: { listen_port: 'port for node to listen on', loglevel: "use 'warn' to make the server quieter" },
    listen_port: 80,
    prefix: 'http://',
    suffix: '',
    loglevel: 'info',
    serve_dir: '/data/images',
    'image-creator': 'internal',
    'image-creator-uuid': '5f0b7d2a-1c3e-4b8f-9e6d-7a8b9c0d1e2f',
    'image-vendor-uuid': '5f0b7d2a-1c3e-4b8f-9e6d-7a8b9c0d1e2f',
  };
  const c = buildConfig(original, at);
  t.is(c.listen_port, 80);
  t.is(c.serve_dir, '/data/images');
  t.is(c['image-creator'], 'internal');
});

const BAD: [string, Record<string, unknown>, RegExp][] = [
  ['listen_port out of range', { listen_port: 70000 }, /"listen_port"/],
  ['listen_port of the wrong type', { listen_port: true }, /"listen_port"/],
  ['unknown loglevel', { loglevel: 'loud' }, /"loglevel"/],
  ['base_url that is no URL', { base_url: 'images.example.net' }, /"base_url"/],
  ['trust_proxy as a string', { trust_proxy: 'yes' }, /"trust_proxy"/],
  ['socket_mode that is not octal', { socket_mode: '0999' }, /"socket_mode"/],
  ['creator uuid that is no uuid', { 'image-creator-uuid': 'bob' }, /"image-creator-uuid"/],
  ['a typo of a key', { serve_dirr: '/x' }, /unknown key "serve_dirr"/],
];

for (const [name, raw, message] of BAD) {
  test(`a bad value stops the start and names the key: ${name}`, (t) => {
    const err = t.throws(() => buildConfig(raw, at), { instanceOf: ConfigError });
    t.regex(err!.message, message);
    t.true(err!.message.startsWith(at));
  });
}

test('loadConfig reports unreadable files and bad JSON with the path', (t) => {
  const dir = tmpDir(t);
  t.throws(() => loadConfig(path.join(dir, 'missing.json')), { message: /cannot read config .*missing\.json: ENOENT/ });
  fs.writeFileSync(path.join(dir, 'bad.json'), '{"listen_port": 80,');
  t.throws(() => loadConfig(path.join(dir, 'bad.json')), { message: /bad\.json: not valid JSON/ });
});

test("the repository's config.json serves ./serve_dir on 127.0.0.1:8080", (t) => {
  const c = loadConfig(path.join(REPO_ROOT, 'config.json'));
  t.is(c.listen_port, 8080);
  t.is(c.listen_address, '127.0.0.1');
  t.is(c.serve_dir, path.join(REPO_ROOT, 'serve_dir'));
});
