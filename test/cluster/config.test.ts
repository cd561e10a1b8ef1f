/*
 * The `cluster` key of config.json: optional, checked like every other
 * key, with defaults for what an operator need not say.
 */
import path from 'node:path';
import test from 'ava';
import { buildConfig, ConfigError } from '../../src/config/config.js';
import { defaultServerId } from '../../src/config/cluster.js';

const where = path.join('/etc/image-server', 'config.json');
const base = { serve_dir: '/var/images' };

test('no cluster key: the server runs alone', (t) => {
  t.is(buildConfig(base, where).cluster, undefined);
});

test('a minimal cluster key gets its defaults', (t) => {
  const config = buildConfig({
    ...base,
    cluster: { etcd: { endpoints: ['http://10.0.0.1:2379'] }, advertise_url: 'http://10.0.0.5:8080' },
  }, where);
  t.deepEqual(config.cluster, {
    etcd: { endpoints: ['http://10.0.0.1:2379'], prefix: '/smartos-image-server/' },
    advertise_url: 'http://10.0.0.5:8080',
    concurrency: 2,
    small_concurrency: 8,
    sync_interval_ms: 300_000,
  });
});

test('every cluster option is accepted', (t) => {
  const cluster = {
    etcd: {
      endpoints: ['https://etcd1:2379', 'https://etcd2:2379/'],
      prefix: '/dc1/images/',
      credentials: { username: 'imgsrv', password: 'secret' },
      ca_file: 'etcd-ca.pem',
    },
    advertise_url: 'https://images-1.example.net',
    id: 'images-1',
    peer_auth: { username: 'peer', password: 'peer-secret' },
    concurrency: 4,
    small_concurrency: 12,
    sync_interval_ms: 5000,
  };
  t.deepEqual(buildConfig({ ...base, cluster }, where).cluster, cluster);
});

for (const [what, cluster, message] of [
  ['no etcd', { advertise_url: 'http://a:1' }, /etcd/],
  ['no advertise_url', { etcd: { endpoints: ['http://e:2379'] } }, /advertise_url/],
  ['no endpoints', { etcd: { endpoints: [] }, advertise_url: 'http://a:1' }, /endpoints/],
  ['an endpoint without a scheme', { etcd: { endpoints: ['10.0.0.1:2379'] }, advertise_url: 'http://a:1' }, /endpoints/],
  ['an advertise_url that is no URL', { etcd: { endpoints: ['http://e:2379'] }, advertise_url: 'a:1' }, /advertise_url/],
  ['a prefix not starting with /', { etcd: { endpoints: ['http://e:2379'], prefix: 'x/' }, advertise_url: 'http://a:1' }, /prefix/],
  ['an unknown key', { etcd: { endpoints: ['http://e:2379'] }, advertise_url: 'http://a:1', peers: [] }, /unknown key "peers" in "cluster"/],
  ['credentials without a password', { etcd: { endpoints: ['http://e:2379'], credentials: { username: 'u' } }, advertise_url: 'http://a:1' }, /password/],
  ['an id with a slash', { etcd: { endpoints: ['http://e:2379'] }, advertise_url: 'http://a:1', id: 'a/b' }, /id/],
] as const) {
  test(`refused: ${what}`, (t) => {
    t.throws(() => buildConfig({ ...base, cluster }, where), { instanceOf: ConfigError, message });
  });
}

test('a server is named by the host and port it advertises unless the config names it', (t) => {
  t.is(defaultServerId('http://10.0.0.5:8080'), '10.0.0.5:8080');
  t.is(defaultServerId('https://images.example.net/'), 'images.example.net');
  t.is(defaultServerId('http://[::1]:8080/imgapi'), '_::1_:8080_imgapi');
});
