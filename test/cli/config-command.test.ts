import path from 'node:path';
import test from 'ava';
import { REPO_ROOT, tmpDir } from '../helpers/images.js';
import { runCli, writeConfig } from './spawn.js';

test('`image-server config` prints the resolved configuration from any working directory', (t) => {
  const r = runCli(t, ['config']);
  t.is(r.status, 0, r.stderr);
  const config = JSON.parse(r.stdout) as Record<string, unknown>;
  t.is(config.serve_dir, path.join(REPO_ROOT, 'serve_dir'));
  t.is(config.listen_port, 8080);
  t.is(config.drain_timeout_ms, 20_000, 'defaults are filled in');
});

test('`image-server config KEY` prints one key, strings bare, for shell scripts', (t) => {
  const dir = tmpDir(t);
  const file = writeConfig(t, { serve_dir: dir, listen_port: 8123 });
  t.is(runCli(t, ['--config', file, 'config', 'serve_dir']).stdout, `${dir}\n`);
  t.is(runCli(t, ['--config', file, 'config', 'listen_port']).stdout, '8123\n');
  t.is(runCli(t, ['--config', file, 'config', 'trust_proxy']).stdout, 'false\n');
});

test('IMAGE_SERVER_CONFIG chooses the file; --config wins over it', (t) => {
  const a = writeConfig(t, { listen_port: 1111 });
  const b = writeConfig(t, { listen_port: 2222 });
  t.is(runCli(t, ['config', 'listen_port'], { IMAGE_SERVER_CONFIG: a }).stdout, '1111\n');
  t.is(runCli(t, ['--config', b, 'config', 'listen_port'], { IMAGE_SERVER_CONFIG: a }).stdout, '2222\n');
});

test('a bad config fails with one line on stderr naming the key', (t) => {
  const file = writeConfig(t, { listen_port: -1 });
  const r = runCli(t, ['--config', file, 'config']);
  t.is(r.status, 1);
  t.is(r.stdout, '');
  t.regex(r.stderr, /^image-server: .*config\.json: "listen_port" .*\n$/);
  t.is(r.stderr.split('\n').length, 2, 'exactly one line');
});

test('serving with a bad config exits non-zero before listening', (t) => {
  const file = writeConfig(t, { loglevel: 'chatty' });
  const r = runCli(t, ['--config', file]);
  t.is(r.status, 1);
  t.regex(r.stderr, /"loglevel"/);
});

test('an unknown key for `config KEY` is an error', (t) => {
  const r = runCli(t, ['config', 'no_such_key']);
  t.is(r.status, 1);
  t.is(r.stderr, 'image-server: no such config key: no_such_key\n');
});
