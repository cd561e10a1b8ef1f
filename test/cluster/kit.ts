/*
 * What the cluster tests share: a real etcd (Debian's etcd-server) on free
 * loopback ports with its own data folder, servers run as real processes
 * (spawnServer) each with its own serve_dir and advertise_url, and small
 * HTTP helpers. Convergence times are measured, logged with t.log and
 * appended to test-output/cluster-convergence.txt in the repository
 * (git-ignored); tests never assert tight ones.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { ExecutionContext } from 'ava';
import { Etcd3 } from 'etcd3';
import { REPO_ROOT, tmpDir } from '../helpers/images.js';
import { findTool } from '../helpers/system-tools.js';
import { spawnServer, writeConfig, type Child } from '../cli/spawn.js';
import { BASIC, PASSWORD, USER, call, jsonBody, minimalManifest, parse, publish, writers } from '../publish/kit.js';

export const ETCD = findTool('etcd');
export const CONVERGENCE_FILE = path.join(REPO_ROOT, 'test-output', 'cluster-convergence.txt');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function until<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  ms = 60_000,
  pollMs = 50,
): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  for (;;) {
    let value: T | undefined | false;
    try {
      value = await check();
    } catch {
      value = undefined;
    }
    if (value !== undefined && value !== false) return { value, ms: Date.now() - started };
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** Logs a measured time and appends it to CONVERGENCE_FILE. */
export function measured(t: ExecutionContext, what: string, ms: number): void {
  t.log(`${what}: ${ms} ms`);
  fs.mkdirSync(path.dirname(CONVERGENCE_FILE), { recursive: true });
  fs.appendFileSync(CONVERGENCE_FILE, `${new Date().toISOString()}\t${t.title}\t${what}\t${ms} ms\n`);
}

/* ------------------------------------------------------------------ etcd */

export class EtcdProcess {
  proc: ChildProcess | undefined;
  readonly endpoint: string;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly t: ExecutionContext, readonly dataDir: string, readonly clientPort: number, readonly peerPort: number) {
    this.endpoint = `http://127.0.0.1:${clientPort}`;
    t.teardown(() => {
      this.proc?.kill('SIGKILL');
    });
  }

  static async start(t: ExecutionContext): Promise<EtcdProcess> {
    if (!ETCD) throw new Error('etcd is not installed');
    const etcd = new EtcdProcess(t, path.join(tmpDir(t, 'etcd-'), 'data'), await freePort(), await freePort());
    await etcd.start();
    return etcd;
  }

  async start(): Promise<void> {
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const log = fs.openSync(`${this.dataDir}.log`, 'a');
    const proc = spawn(ETCD!, [
      '--name', 'test',
      '--data-dir', this.dataDir,
      '--listen-client-urls', this.endpoint,
      '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `test=${peer}`,
      '--log-level', 'warn',
    ], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    await until('etcd healthy', async () => {
      if (proc.exitCode !== null) throw new Error(`etcd exited: ${fs.readFileSync(`${this.dataDir}.log`, 'utf8').slice(-2000)}`);
      const res = await fetch(`${this.endpoint}/health`);
      const body = (await res.json()) as { health?: string };
      return body.health === 'true';
    }, 20_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${fs.readFileSync(`${this.dataDir}.log`, 'utf8').slice(-2000)}`);
    });
  }

  async stop(): Promise<void> {
    this.proc?.kill('SIGTERM');
    await this.exited;
    this.proc = undefined;
  }

  /** A client for the test's own look at the index; closed in teardown. */
  client(): Etcd3 {
    const client = new Etcd3({ hosts: this.endpoint });
    this.t.teardown(() => client.close());
    return client;
  }

  /** Compacts etcd's history up to its current revision: watches from older revisions fail. */
  async compact(): Promise<string> {
    const client = this.client();
    const res = await client.get('compaction-probe').exec();
    const revision = res.header.revision;
    await client.kv.compact({ revision, physical: true });
    return revision;
  }
}

/* ----------------------------------------------------------------- proxy */

interface Piped {
  client: net.Socket;
  upstream: net.Socket;
  sent: number;
}

/**
 * A TCP proxy in front of a server, standing for the network between peers:
 * it can hold back what the server sends after so many bytes per
 * connection, so a test catches a transfer in the middle, whatever the load.
 */
export class Throttle {
  port = 0;
  private readonly server: net.Server;
  private readonly pipes = new Set<Piped>();
  private limit = Infinity;
  private refusing = false;

  private constructor(private readonly targetPort: number) {
    this.server = net.createServer((client) => this.accept(client));
  }

  static async start(t: ExecutionContext, targetPort: number): Promise<Throttle> {
    const proxy = new Throttle(targetPort);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.server.address() as net.AddressInfo).port;
    t.teardown(() => {
      for (const p of proxy.pipes) p.client.destroy();
      proxy.server.close();
    });
    return proxy;
  }

  /** From now on, each connection passes at most about `bytes` from the server, then waits. */
  holdAfter(bytes: number): void {
    this.limit = bytes;
  }

  release(): void {
    this.limit = Infinity;
    for (const p of this.pipes) p.upstream.resume();
  }

  /** A network partition: every connection is cut, and new ones are refused until restore(). */
  cut(): void {
    this.refusing = true;
    for (const p of this.pipes) {
      p.client.destroy();
      p.upstream.destroy();
    }
  }

  restore(): void {
    this.refusing = false;
  }

  private accept(client: net.Socket): void {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    const pipe: Piped = { client, upstream, sent: 0 };
    this.pipes.add(pipe);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      pipe.sent += chunk.length;
      const flowing = client.write(chunk);
      if (!flowing || pipe.sent >= this.limit) upstream.pause();
    });
    client.on('drain', () => {
      if (pipe.sent < this.limit) upstream.resume();
    });
    const close = () => {
      this.pipes.delete(pipe);
      client.destroy();
      upstream.destroy();
    };
    upstream.on('close', close);
    client.on('close', close);
    upstream.on('error', close);
    client.on('error', close);
  }
}

/* ---------------------------------------------------------------- servers */

export class Node {
  child!: Child;
  readonly url: string;
  /** The proxy peers reach this server through, when it was started with one. */
  proxy: Throttle | undefined;

  constructor(
    private readonly t: ExecutionContext,
    readonly name: string,
    readonly port: number,
    readonly serveDir: string,
    private readonly config: Record<string, unknown>,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  static async start(
    t: ExecutionContext,
    name: string,
    etcd: EtcdProcess,
    prefix: string,
    opts: { credentials?: { username: string; password: string }; proxy?: boolean; etcdEndpoint?: string; config?: Record<string, unknown> } = {},
  ): Promise<Node> {
    const port = await freePort();
    const serveDir = tmpDir(t, `cluster-${name}-`);
    const proxy = opts.proxy ? await Throttle.start(t, port) : undefined;
    const config = {
      serve_dir: serveDir,
      listen_port: port,
      scan_interval_ms: 200,
      ...(await writers()),
      cluster: {
        etcd: { endpoints: [opts.etcdEndpoint ?? etcd.endpoint], prefix, ...(opts.credentials ? { credentials: opts.credentials } : {}) },
        advertise_url: `http://127.0.0.1:${proxy?.port ?? port}`,
        id: name,
        // Private images are pulled with credentials.
        peer_auth: { username: USER, password: PASSWORD },
      },
      ...opts.config,
    };
    const node = new Node(t, name, port, serveDir, config);
    node.proxy = proxy;
    await node.start();
    return node;
  }

  /**
   * A restart keeps the port its peers know. Until the old listener's last
   * connections are gone, or while another process's connection happens to
   * use that local port, the bind is refused; it is retried until a deadline.
   */
  async start(): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        this.child = await spawnServer(this.t, this.config);
        return;
      } catch (err) {
        if (!(err as Error).message.includes('EADDRINUSE') || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  get pid(): number {
    return this.child.proc.pid!;
  }

  async kill9(): Promise<void> {
    this.child.proc.kill('SIGKILL');
    await this.child.exited;
  }

  /** SIGTERM, as SMF stops it; resolves with the exit code. */
  async stop(): Promise<number | null> {
    this.child.proc.kill('SIGTERM');
    return this.child.exited;
  }

  /** A config with this serve_dir, for the admin commands (images, verify). */
  adminConfig(): string {
    return writeConfig(this.t, { serve_dir: this.serveDir });
  }

  /** The manifest as GetImage serves it (anonymously, unless `auth`), or undefined. */
  async image(uuid: string, auth: string | null = null): Promise<Record<string, any> | undefined> {
    const res = await call(this.url, 'GET', `/images/${uuid}`, { auth });
    return res.status === 200 ? parse(res) : undefined;
  }

  async uuids(): Promise<Set<string>> {
    const res = await call(this.url, 'GET', '/images', { auth: null });
    return new Set(parse<{ uuid: string }[]>(res).map((m) => m.uuid));
  }

  fileSha1(uuid: string, auth?: string): Promise<string> {
    return streamSha1(`${this.url}/images/${uuid}/file`, auth);
  }

  async ping(): Promise<Record<string, any>> {
    return parse(await call(this.url, 'GET', '/ping', { auth: null }));
  }

  async metrics(): Promise<string> {
    return (await call(this.url, 'GET', '/metrics', { auth: null })).body.toString();
  }

  /** Cluster log records at warn or worse, for a failing test's log. */
  problems(): string[] {
    return this.child.logs.filter((r) => Number(r.level) >= 40).map((r) => `${this.name}: ${JSON.stringify(r)}`);
  }

  /** Publishes small random bytes through the IMGAPI write API. */
  async publish(bytes = randomBytes(64 * 1024), fields: Record<string, unknown> = {}): Promise<{ uuid: string; sha1: string }> {
    const manifest = minimalManifest({ name: `cluster-${this.name}`, ...fields });
    await publish(this.url, manifest, bytes);
    return { uuid: String(manifest.uuid), sha1: createHash('sha1').update(bytes).digest('hex') };
  }

  /** Publishes `size` random bytes generated as a stream (never all in memory). */
  async publishLarge(size: number): Promise<{ uuid: string; sha1: string }> {
    const manifest = minimalManifest({ name: `cluster-large-${this.name}` });
    const uuid = String(manifest.uuid);
    const imported = await call(this.url, 'POST', `/images/${uuid}?action=import`, jsonBody(manifest));
    if (imported.status !== 200) throw new Error(`import: ${imported.status} ${imported.body}`);
    const hash = createHash('sha1');
    let left = size;
    const body = new Readable({
      read() {
        if (left === 0) {
          this.push(null);
          return;
        }
        const chunk = randomBytes(Math.min(left, 1024 * 1024));
        left -= chunk.length;
        hash.update(chunk);
        this.push(chunk);
      },
    });
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${this.url}/images/${uuid}/file?compression=none`, {
        method: 'PUT', agent: false, headers: { authorization: BASIC, 'content-length': size },
      }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('error', reject);
      body.pipe(req);
    });
    if (status !== 200) throw new Error(`file: ${status}`);
    const activated = await call(this.url, 'POST', `/images/${uuid}?action=activate`);
    if (activated.status !== 200) throw new Error(`activate: ${activated.status} ${activated.body}`);
    return { uuid, sha1: hash.digest('hex') };
  }

  /** Partial downloads in serve_dir/.mirror now (pulls go there first), with their sizes. */
  partials(): { file: string; size: number }[] {
    const root = path.join(this.serveDir, '.mirror');
    let names: string[];
    try {
      names = fs.readdirSync(root);
    } catch {
      return [];
    }
    const out: { file: string; size: number }[] = [];
    for (const name of names.filter((n) => n.endsWith('.partial'))) {
      try {
        out.push({ file: name, size: fs.statSync(path.join(root, name)).size });
      } catch {
        // imported and removed meanwhile
      }
    }
    return out;
  }
}

export function streamSha1(url: string, auth?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false, headers: auth ? { authorization: auth } : {} }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`GET ${url}: ${res.statusCode}`));
        return;
      }
      const hash = createHash('sha1');
      res.on('data', (c: Buffer) => hash.update(c));
      res.on('end', () => resolve(hash.digest('hex')));
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** A prefix of its own for each test's cluster. */
export function testPrefix(): string {
  return `/imgsrv-test-${randomUUID().slice(0, 8)}/`;
}

/** Three servers on one etcd. */
export async function threeServers(t: ExecutionContext, etcd: EtcdProcess, prefix = testPrefix()): Promise<[Node, Node, Node]> {
  const nodes = await Promise.all(['a', 'b', 'c'].map((name) => Node.start(t, name, etcd, prefix)));
  return nodes as [Node, Node, Node];
}

/** Waits until every node serves `uuid` with the given sha1; returns the time it took. */
export async function servedEverywhere(nodes: Node[], img: { uuid: string; sha1: string }, ms = 60_000): Promise<number> {
  const { ms: took } = await until(`${img.uuid} on ${nodes.map((n) => n.name).join(',')}`, async () => {
    for (const n of nodes) if (!(await n.image(img.uuid))) return false;
    return true;
  }, ms);
  for (const n of nodes) {
    const got = await n.fileSha1(img.uuid);
    if (got !== img.sha1) throw new Error(`${n.name} serves ${img.uuid} with sha1 ${got}, expected ${img.sha1}`);
  }
  return took;
}
