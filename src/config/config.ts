/*
 * Configuration: one JSON file, read once, checked against a schema, with
 * defaults filled in and relative paths resolved against the file's folder,
 * then frozen and passed down. The keys of the original smartos-image-server
 * keep their meaning; a bad or unknown key stops the start with a message
 * that names it. The schema (schema.ts) is compiled at build time into
 * validate-config.js, so a start neither loads ajv nor compiles it.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ErrorObject } from 'ajv';
import { channelsProblem, landMirrors, type ChannelConfig } from './channels.js';
import type { ClusterConfig } from './cluster.js';
import type { RateSpec } from '../credentials.js';
import type { LogLevel } from '../log.js';
import { resolveMirrorPaths, type MirrorConfig } from './mirrors.js';
import validate from './validate-config.js';

export interface Config {
  /** A number is a TCP port; a string is the path of a unix socket. */
  listen_port: number | string;
  listen_address: string;
  /** Octal permission bits of the unix socket, so nginx can connect. */
  socket_mode: string;
  serve_dir: string;
  /** Absolute URLs are prefix + Host header + suffix, unless base_url is set. */
  prefix: string;
  suffix: string;
  base_url: string | null;
  /** Honour X-Forwarded-Host/-Proto (only behind a proxy you run). */
  trust_proxy: boolean;
  /** nginx's internal location over serve_dir that sends whole files (X-Accel-Redirect); null: off. */
  x_accel_redirect: string | null;
  loglevel: LogLevel;
  'image-creator': string;
  'image-creator-uuid': string;
  'image-vendor-uuid': string;
  comments: Record<string, unknown>;
  /** How long SIGTERM lets in-flight requests finish before closing them. */
  drain_timeout_ms: number;
  keep_alive_timeout_ms: number;
  /** How long a client may take to send a request's headers. */
  headers_timeout_ms: number;
  /** How long a request may go without a byte moving either way (a stalled body or download). */
  idle_timeout_ms: number;
  scan_interval_ms: number;
  full_scan_interval_ms: number;
  /** Hear of changes in serve_dir through inotify where there is one. */
  watch_fs: boolean;
  /** The background MD5 pass over legacy files: MB/s, and how long a download waits for its file's MD5. */
  md5_rate_mb_s: number;
  md5_wait_ms: number;
  /** Users who may write, with scrypt password hashes (`image-server passwd`). */
  users: Record<string, { password: string }>;
  /** Bearer tokens by name, stored as hashes (`image-server token`). */
  tokens: Record<string, string>;
  /** Require credentials for reads too. */
  read_auth: boolean;
  /** Password checks: threads, waiting room, failure limits, table size, how long a success is remembered. */
  auth_workers: number;
  auth_queue_max: number;
  auth_client_failures: RateSpec;
  auth_user_failures: RateSpec;
  auth_tracked_max: number;
  auth_cache_seconds: number;
  /** Whether images published without a `public` field are visible to anonymous users. */
  default_public: boolean;
  max_upload_bytes: number;
  /** Unactivated images untouched for this long are removed. */
  unactivated_ttl_hours: number;
  /** Background integrity scrub: MB/s to read at (0: off), how often, and whether to disable what fails. */
  scrub_rate_mb_s: number;
  scrub_interval_hours: number;
  scrub_repair: boolean;
  /** GET /metrics: open to all, for authenticated users only, or not served. */
  metrics: 'public' | 'auth' | 'off';
  /** Replication through etcd (src/cluster); absent: this server runs alone. */
  cluster?: ClusterConfig;
  /** Upstreams to copy images from, each on its interval (src/mirror). */
  mirrors: MirrorConfig[];
  /** Release channels (docs/publishing.md#channels); absent: no channels, `channel` parameters ignored. */
  channels?: ChannelConfig[];
  /** The file this was read from (absolute), for messages and `config`. */
  config_path: string;
}

export class ConfigError extends Error {}

/** Plain words for the rules whose ajv message would quote a regular expression. */
function hint(err: ErrorObject): string | undefined {
  if (err.propertyName !== undefined) return `has a name, "${err.propertyName}", with ":" or spaces in it`;
  if (err.keyword !== 'pattern') return undefined;
  if (err.instancePath.startsWith('/users/')) return 'must be a hash printed by `image-server passwd NAME`';
  if (err.instancePath.startsWith('/tokens/')) return 'must be a hash printed by `image-server token NAME`';
  return undefined;
}

function describe(err: ErrorObject): string {
  if (err.keyword === 'additionalProperties') {
    const parent = err.instancePath ? ` in "${err.instancePath.slice(1).replaceAll('/', '.')}"` : '';
    return `unknown key "${String(err.params.additionalProperty)}"${parent}`;
  }
  const key = err.instancePath.replace(/^\//, '').replaceAll('/', '.');
  return `"${key}" ${hint(err) ?? err.message ?? 'is invalid'}`;
}

/** Validates and completes a parsed config object; relative paths resolve against baseDir. */
export function buildConfig(raw: unknown, configPath: string): Readonly<Config> {
  const data = structuredClone(raw) as Record<string, unknown>;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ConfigError(`${configPath}: the configuration must be a JSON object`);
  }
  if (!validate(data)) {
    throw new ConfigError(`${configPath}: ${describe(validate.errors![0]!)}`);
  }
  const channelsError = channelsProblem(data.channels as ChannelConfig[] | undefined)
    ?? landMirrors(data.mirrors as MirrorConfig[], data.channels as ChannelConfig[] | undefined);
  if (channelsError) throw new ConfigError(`${configPath}: ${channelsError}`);
  const baseDir = path.dirname(configPath);
  const config = data as unknown as Config;
  config.serve_dir = path.resolve(baseDir, config.serve_dir);
  resolveMirrorPaths(config.mirrors, baseDir);
  if (typeof config.listen_port === 'string') config.listen_port = path.resolve(baseDir, config.listen_port);
  if (config.base_url) config.base_url = config.base_url.replace(/\/+$/, '');
  config.config_path = configPath;
  return deepFreeze(config);
}

export function loadConfig(configPath: string): Readonly<Config> {
  const abs = path.resolve(configPath);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${abs}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${abs}: not valid JSON: ${(err as Error).message}`);
  }
  return buildConfig(raw, abs);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
