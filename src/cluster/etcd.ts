/*
 * The etcd side of the cluster: the client with timeouts short enough that
 * an unreachable etcd is noticed in seconds, the layout of keys under the
 * prefix, a paged listing at one revision, and a watch that reports its
 * disconnection instead of retrying on its own.
 *
 *   <prefix>images/<uuid>              {"manifest": {…}, "legacy": {…}|null, "by": "<server id>", "at": "<ISO>"}
 *   <prefix>holders/<uuid>/<server id> the advertise_url of a server that holds the file
 *   <prefix>deleted/<uuid>             {"uuid", "name", "version", "deleted_at", "by", "server"}
 *   <prefix>servers/<server id>        {"url", "version", "started_at"}, on a lease: live servers only
 *   <prefix>suspect/<uuid>/<server id> {"by", "at", "problem"}: a peer got bytes from that holder that do not match
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConsecutiveBreaker, circuitBreaker, handleWhen } from 'cockatiel';
import { Etcd3, Range, isRecoverableError, type IKeyValue, type IOptions, type Watcher } from 'etcd3';
import { UUID_RE } from '../manifest/types.js';
import type { ClusterConfig } from '../config/cluster.js';

/** Milliseconds an etcd call may take before it counts as failed. */
const CALL_TIMEOUT_MS = 5000;
const PAGE = 500;

export function createClient(cluster: ClusterConfig, configPath: string): Etcd3 {
  const options: IOptions = {
    hosts: cluster.etcd.endpoints.map((e) => e.replace(/\/+$/, '')),
    dialTimeout: CALL_TIMEOUT_MS,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
    faultHandling: {
      // The client's default stops calling an endpoint for 5 s after three
      // failures; a server should notice within a second that etcd is back.
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }),
    },
    grpcOptions: {
      // gRPC's own reconnect backoff grows to two minutes; a server should
      // notice that etcd is back within seconds.
      'grpc.initial_reconnect_backoff_ms': 250,
      'grpc.max_reconnect_backoff_ms': 2000,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      // A watch on a connection that died without a word is noticed too.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5000,
      'grpc.keepalive_permit_without_calls': 1,
    },
  };
  if (cluster.etcd.credentials) {
    options.auth = { username: cluster.etcd.credentials.username, password: cluster.etcd.credentials.password };
  }
  if (cluster.etcd.ca_file) {
    options.credentials = { rootCertificate: fs.readFileSync(path.resolve(path.dirname(configPath), cluster.etcd.ca_file)) };
  }
  return new Etcd3(options);
}

export class Keys {
  constructor(readonly prefix: string) {}

  image(uuid: string): string {
    return `${this.prefix}images/${uuid}`;
  }

  holders(uuid: string): string {
    return `${this.prefix}holders/${uuid}/`;
  }

  holder(uuid: string, server: string): string {
    return `${this.holders(uuid)}${server}`;
  }

  deleted(uuid: string): string {
    return `${this.prefix}deleted/${uuid}`;
  }

  server(id: string): string {
    return `${this.prefix}servers/${id}`;
  }

  suspect(uuid: string, server: string): string {
    return `${this.prefix}suspect/${uuid}/${server}`;
  }

  /** What a key under the prefix names, or undefined for keys this server does not use. */
  parse(key: string): ParsedKey | undefined {
    if (!key.startsWith(this.prefix)) return undefined;
    const parts = key.slice(this.prefix.length).split('/');
    if (parts[0] === 'servers' && parts.length === 2 && parts[1]) return { kind: 'server', server: parts[1] };
    // Only real uuids ever reach a path in serve_dir.
    const uuid = parts[1] ?? '';
    if (!UUID_RE.test(uuid)) return undefined;
    if (parts[0] === 'images' && parts.length === 2) return { kind: 'image', uuid };
    if (parts[0] === 'deleted' && parts.length === 2) return { kind: 'deleted', uuid };
    if (parts[0] === 'holders' && parts.length === 3 && parts[2]) return { kind: 'holder', uuid, server: parts[2] };
    if (parts[0] === 'suspect' && parts.length === 3 && parts[2]) return { kind: 'suspect', uuid, server: parts[2] };
    return undefined;
  }
}

export type ParsedKey =
  | { kind: 'image'; uuid: string }
  | { kind: 'deleted'; uuid: string }
  | { kind: 'holder'; uuid: string; server: string }
  | { kind: 'suspect'; uuid: string; server: string }
  | { kind: 'server'; server: string };

export interface Listing {
  kvs: IKeyValue[];
  revision: string;
  clusterId: string;
}

/** Every key under `prefix`, in pages, all read at the revision of the first page. */
export async function listAll(client: Etcd3, prefix: string): Promise<Listing> {
  const whole = Range.prefix(prefix);
  const first = await client.getAll().prefix(prefix).sort('Key', 'Ascend').limit(PAGE).exec();
  const revision = first.header.revision;
  const kvs = [...first.kvs];
  let more = first.more;
  while (more && kvs.length > 0) {
    const after = Buffer.concat([kvs[kvs.length - 1]!.key, Buffer.from([0])]);
    const page = await client.getAll().inRange(new Range(after, whole.end)).revision(revision)
      .sort('Key', 'Ascend').limit(PAGE).exec();
    kvs.push(...page.kvs);
    more = page.more;
  }
  return { kvs, revision, clusterId: first.header.cluster_id };
}

export interface WatchHandlers {
  put(kv: IKeyValue): void;
  delete(kv: IKeyValue): void;
  /** The watch stopped (etcd gone, or history compacted past it): list again. */
  lost(err: Error): void;
}

/**
 * Watches `prefix` from `fromRevision`; resolves once etcd confirmed the
 * watch. The client library would reconnect a broken watch by itself, with
 * a backoff of up to 30 s; this one is cancelled instead and `lost` is
 * called, so the owner lists everything again when etcd answers.
 */
export async function watchFrom(client: Etcd3, prefix: string, fromRevision: string, on: WatchHandlers): Promise<Watcher> {
  const watcher = client.watch().prefix(prefix).startRevision(fromRevision).watcher();
  let settled = false;
  let done = false;
  const lose = (err: Error) => {
    if (done) return;
    done = true;
    void watcher.cancel().catch(() => undefined);
    if (settled) on.lost(err);
  };
  watcher.on('put', (kv) => on.put(kv));
  watcher.on('delete', (kv) => on.delete(kv));
  watcher.on('error', lose);
  watcher.on('disconnected', lose);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('etcd did not confirm the watch in time')), CALL_TIMEOUT_MS);
      watcher.once('connected', () => {
        clearTimeout(timer);
        resolve();
      });
      const fail = (err: Error) => {
        clearTimeout(timer);
        reject(err);
      };
      watcher.once('error', fail);
      watcher.once('disconnected', fail);
    });
  } catch (err) {
    done = true;
    await watcher.cancel().catch(() => undefined);
    throw err;
  }
  settled = true;
  return watcher;
}

/** The next revision after `revision`, as etcd spells revisions (decimal strings). */
export function nextRevision(revision: string): string {
  return (BigInt(revision) + 1n).toString();
}

export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    promise.then((v) => resolve(v), () => resolve(undefined)).finally(() => clearTimeout(timer));
  });
}
