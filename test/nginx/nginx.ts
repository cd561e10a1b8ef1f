/*
 * A real nginx (Debian's) in front of a real image server on a unix socket,
 * for one test. nginx runs from its own temp prefix with a generated
 * nginx.conf that includes etc/nginx-image-server.conf, changed only where
 * a test must (the listen port and the socket path): pid file, logs and
 * temp folders all in the prefix, nothing root-owned, `daemon off` so it is
 * our child and dies in teardown. Run as root (CI), the workers drop to
 * nobody as in production, so the socket's permissions are tested too.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { spawnServer, type Child } from '../cli/spawn.js';
import { REPO_ROOT, socketPath as makeSocketPath, tmpDir } from '../helpers/images.js';
import { findTool } from '../helpers/system-tools.js';

export const NGINX = findTool('nginx');
export const EXAMPLE_CONF = path.join(REPO_ROOT, 'etc', 'nginx-image-server.conf');
/** What the example says, and what a test puts in its place. */
export const EXAMPLE_LISTEN = 'listen 80;';
export const EXAMPLE_SOCKET = '/var/image-server/run/image-server.sock';
export const EXAMPLE_SERVE_DIR = '/var/image-server/images/';

export interface Nginx {
  port: number;
  /** http://127.0.0.1:PORT, the public base the server's URLs must carry. */
  base: string;
  master: number;
  /** The worker processes' pids (children of the master). */
  workers(): number[];
  prefix: string;
  errorLog: string;
  accessLog: string;
}

function replaceOnce(text: string, from: string, to: string): string {
  const n = text.split(from).length - 1;
  if (n !== 1) throw new Error(`${EXAMPLE_CONF}: expected "${from}" once, found it ${n} times`);
  return text.replace(from, to);
}

/** The example configuration with the test's port, socket and serve_dir in place of the real ones. */
export function siteConfig(port: number, socketPath: string, serveDir = EXAMPLE_SERVE_DIR): string {
  let text = fs.readFileSync(EXAMPLE_CONF, 'utf8');
  text = replaceOnce(text, EXAMPLE_LISTEN, `listen 127.0.0.1:${port};`);
  text = replaceOnce(text, `unix:${EXAMPLE_SOCKET}:`, `unix:${socketPath}:`);
  text = replaceOnce(text, `alias ${EXAMPLE_SERVE_DIR};`, `alias ${serveDir.replace(/\/?$/, '/')};`);
  return text;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** nginx ≥ 1.19.5 takes -e, so it never opens the compiled-in /var/log/nginx/error.log. */
function supportsErrorLogFlag(): boolean {
  const v = spawnSync(NGINX!, ['-v'], { encoding: 'utf8' });
  const m = /nginx\/(\d+)\.(\d+)\.(\d+)/.exec(`${v.stderr}${v.stdout}`);
  if (!m) return false;
  const [maj, min, patch] = m.slice(1).map(Number) as [number, number, number];
  return maj > 1 || (maj === 1 && (min > 19 || (min === 19 && patch >= 5)));
}

/** Processes whose parent is `ppid`, from /proc. */
export function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid …; comm may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

const isRoot = () => process.getuid?.() === 0;

async function waitForExit(proc: ChildProcess, ms: number): Promise<boolean> {
  if (proc.exitCode !== null || proc.signalCode !== null) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Starts nginx in front of `socketPath`; it is stopped (and its workers with it) in teardown. */
export async function startNginx(t: ExecutionContext, socketPath: string, serveDir?: string): Promise<Nginx> {
  if (!NGINX) throw new Error('nginx is not installed (apt-get install -y nginx)');
  const prefix = tmpDir(t, 'imgsrv-nginx-');
  // Workers run as nobody when we are root: they must reach their temp folders.
  fs.chmodSync(prefix, 0o755);
  const errorLog = path.join(prefix, 'error.log');
  const accessLog = path.join(prefix, 'access.log');
  const withE = supportsErrorLogFlag();
  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    fs.writeFileSync(path.join(prefix, 'image-server.conf'), siteConfig(port, socketPath, serveDir));
    const temp = (name: string) => `${name}_temp_path ${path.join(prefix, `${name}_temp`)};`;
    const conf = [
      'daemon off;',
      'master_process on;',
      'worker_processes 1;',
      `pid ${path.join(prefix, 'nginx.pid')};`,
      `error_log ${errorLog} info;`,
      isRoot() ? 'user nobody nogroup;' : '',
      'events { worker_connections 256; }',
      'http {',
      `  access_log ${accessLog};`,
      `  ${temp('client_body')}`,
      `  ${temp('proxy')}`,
      `  ${temp('fastcgi')}`,
      `  ${temp('uwsgi')}`,
      `  ${temp('scgi')}`,
      // As eager a gzip as an http block can have: the example's server must still send nothing compressed.
      '  gzip on;',
      '  gzip_types *;',
      '  gzip_proxied any;',
      '  gzip_min_length 1;',
      `  include ${path.join(prefix, 'image-server.conf')};`,
      '}',
      '',
    ].join('\n');
    const confPath = path.join(prefix, 'nginx.conf');
    fs.writeFileSync(confPath, conf);
    const args = ['-p', `${prefix}/`, '-c', confPath, ...(withE ? ['-e', errorLog] : [])];
    const proc = spawn(NGINX, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    proc.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    const base = `http://127.0.0.1:${port}`;
    const ready = await new Promise<boolean>((resolve) => {
      const started = Date.now();
      const poll = () => {
        if (proc.exitCode !== null) return resolve(false);
        if (Date.now() - started > 10_000) return resolve(false);
        const sock = net.connect(port, '127.0.0.1');
        sock.once('connect', () => {
          sock.destroy();
          resolve(true);
        });
        sock.once('error', () => setTimeout(poll, 25));
      };
      poll();
    });
    if (!ready) {
      proc.kill('SIGKILL');
      await waitForExit(proc, 2000);
      lastError = `${output}${fs.existsSync(errorLog) ? fs.readFileSync(errorLog, 'utf8') : ''}`;
      if (/Address already in use/.test(lastError)) continue;
      throw new Error(`nginx did not start: ${lastError}`);
    }
    const master = proc.pid!;
    t.teardown(async () => {
      const workers = childrenOf(master);
      proc.kill('SIGTERM');
      if (!(await waitForExit(proc, 5000))) proc.kill('SIGKILL');
      for (const pid of workers) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    });
    return { port, base, master, workers: () => childrenOf(master), prefix, errorLog, accessLog };
  }
  throw new Error(`nginx found no free port: ${lastError}`);
}

export interface Stack {
  server: Child;
  nginx: Nginx;
  /** nginx's address: what clients use. */
  base: string;
  socketPath: string;
}

/** The image server on a unix socket (trust_proxy on), nginx in front of it. */
export async function startStack(t: ExecutionContext, config: Record<string, unknown>): Promise<Stack> {
  const socketPath = makeSocketPath(t);
  // nginx's workers (nobody, when the tests run as root) must reach the socket.
  fs.chmodSync(path.dirname(socketPath), 0o711);
  const server = await spawnServer(t, { listen_port: socketPath, trust_proxy: true, ...config });
  if (server.where !== socketPath) throw new Error(`the server listens on ${server.where}, not ${socketPath}`);
  const nginx = await startNginx(t, socketPath, typeof config.serve_dir === 'string' ? config.serve_dir : undefined);
  return { server, nginx, base: nginx.base, socketPath };
}

/** VmRSS of a process in bytes, or undefined when it is gone. */
export function rss(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export interface RssTrack {
  baseline: number;
  peak: number;
  samples: number;
}

/**
 * Samples the resident set of some processes every `intervalMs` (each
 * group's sum: nginx may have several workers). start() records the
 * baseline; stop() returns baseline and peak per group.
 */
export class RssSampler {
  private readonly tracks = new Map<string, RssTrack>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly groups: Record<string, () => number[]>, private readonly intervalMs = 200) {}

  private sample(): Map<string, number> {
    const now = new Map<string, number>();
    for (const [name, pids] of Object.entries(this.groups)) {
      now.set(name, pids().reduce((sum, pid) => sum + (rss(pid) ?? 0), 0));
    }
    return now;
  }

  start(): void {
    for (const [name, value] of this.sample()) this.tracks.set(name, { baseline: value, peak: value, samples: 1 });
    this.timer = setInterval(() => {
      for (const [name, value] of this.sample()) {
        const track = this.tracks.get(name)!;
        track.peak = Math.max(track.peak, value);
        track.samples++;
      }
    }, this.intervalMs);
  }

  stop(): Record<string, RssTrack> {
    clearInterval(this.timer);
    for (const [name, value] of this.sample()) {
      const track = this.tracks.get(name)!;
      track.peak = Math.max(track.peak, value);
      track.samples++;
    }
    return Object.fromEntries(this.tracks);
  }
}

export const MiB = 1024 * 1024;
export const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
