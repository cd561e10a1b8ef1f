/*
 * nginx from the Debian package as the yardstick: the same bytes as static
 * files, on loopback, with a prefix, config, pid file, logs and temp paths
 * all inside the bench's temp folder, so it neither needs nor touches
 * /etc/nginx, /var/log/nginx or /run.
 *
 * One worker process, because our server is one process with one event
 * loop, and on a 2-core box the load generator needs the other core; a
 * second nginx worker would mostly measure CPU contention.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { track } from './cleanup.js';
import { HOST, waitForListen } from './net.js';

const NGINX = process.env.NGINX ?? '/usr/sbin/nginx';

export function nginxVersion() {
  // nginx -v prints "nginx version: nginx/1.22.1" to stderr.
  const r = spawnSync(NGINX, ['-v'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`cannot run ${NGINX} (apt-get install -y nginx): ${r.error?.message ?? r.stderr}`);
  }
  return `${r.stderr}${r.stdout}`.trim().replace(/^nginx version: /, '');
}

const q = (s) => `"${s.replace(/["\\]/g, '\\$&')}"`;

/** Content-Type directives giving exactly `type`, e.g. "application/json; charset=utf-8". */
function typeDirectives(type) {
  const [mime, ...params] = type.split(';').map((x) => x.trim());
  const charset = params.find((p) => /^charset=/i.test(p))?.slice('charset='.length);
  return `types { }
      default_type ${mime};${charset ? `
      charset ${charset};
      charset_types ${mime};` : ''}`;
}

/**
 * servers: [{ port, sendfile: true|false, routes: [{ path: '/images', file: '/abs/file', type: 'application/json' }] }]
 * Each URL is an exact-match location aliased to one file, so nginx answers
 * the very URLs our server answers, with the Content-Type ours sends.
 * sendfile is per server block because, on loopback, nginx serves a few MB
 * of JSON faster without it; the bench uses whichever nginx does best.
 */
function config(prefix, servers) {
  // Master running as root would hand workers to "nobody", who cannot read
  // our 0700 temp folder; run them as whoever runs the bench instead.
  const user = process.getuid?.() === 0 ? `user ${os.userInfo().username};` : '';
  const blocks = servers.map(({ port, sendfile, routes }) => `
  server {
    listen ${HOST}:${port};
    sendfile ${sendfile ? 'on' : 'off'};${routes.map((r) => `
    location = ${r.path} {
      alias ${q(r.file)};
      ${typeDirectives(r.type)}
    }`).join('')}
  }`).join('');
  return `# written by bench/lib/nginx.js
daemon off;
worker_processes 1;
${user}
pid ${q(path.join(prefix, 'nginx.pid'))};
error_log ${q(path.join(prefix, 'error.log'))} warn;
events { worker_connections 1024; }
http {
  access_log off;
  server_tokens off;
  tcp_nopush on;
  gzip off;
  etag on;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  client_body_temp_path ${q(path.join(prefix, 'client_body'))};
  proxy_temp_path ${q(path.join(prefix, 'proxy'))};
  fastcgi_temp_path ${q(path.join(prefix, 'fastcgi'))};
  uwsgi_temp_path ${q(path.join(prefix, 'uwsgi'))};
  scgi_temp_path ${q(path.join(prefix, 'scgi'))};${blocks}
}
`;
}

/** Starts nginx in its own process group (so its worker dies with it); resolves once every port listens. */
export async function startNginx(prefix, servers) {
  fs.mkdirSync(prefix, { recursive: true });
  const confFile = path.join(prefix, 'nginx.conf');
  fs.writeFileSync(confFile, config(prefix, servers));
  const errLog = path.join(prefix, 'error.log');
  // -e: without it nginx first opens /var/log/nginx/error.log, before reading our config.
  const args = ['-p', `${prefix}/`, '-c', confFile, '-e', errLog];
  execFileSync(NGINX, [...args, '-t', '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const child = track(spawn(NGINX, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true }), { group: true });
  let stderr = '';
  child.stderr.on('data', (c) => {
    stderr = (stderr + c).slice(-4000);
  });
  const exited = once(child, 'exit');
  const alive = () => child.exitCode === null && child.signalCode === null;
  try {
    for (const { port } of servers) await waitForListen(port, { alive });
    // Someone else on the port would also accept; an nginx that failed to bind exits right away.
    await sleep(100);
    if (!alive()) throw new Error('nginx exited (a port taken?)');
  } catch (err) {
    const log = fs.existsSync(errLog) ? fs.readFileSync(errLog, 'utf8').slice(-2000) : '';
    throw new Error(`nginx did not start: ${err.message}\n${stderr}${log}`, { cause: err });
  }
  return {
    pid: child.pid,
    async stop() {
      if (!alive()) return;
      // SIGTERM to the master is nginx's fast shutdown: it stops its worker and exits.
      child.kill('SIGTERM');
      const done = await Promise.race([exited, sleep(10_000).then(() => null)]);
      if (done === null) {
        process.kill(-child.pid, 'SIGKILL');
        await exited;
      }
    },
  };
}
