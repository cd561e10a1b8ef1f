/*
 * Configuration: one JSON file, read once, checked against a schema, with
 * defaults filled in and relative paths resolved against the file's folder,
 * then frozen and passed down. The keys of the original smartos-image-server
 * keep their meaning; a bad or unknown key stops the start with a message
 * that names it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { channelsProblem, channelsSchema, landMirrors, type ChannelConfig } from './channels.js';
import { clusterSchema, type ClusterConfig } from './cluster.js';
import { PASSWORD_HASH_PATTERN, TOKEN_HASH_PATTERN, type RateSpec } from '../credentials.js';
import { LOG_LEVELS, type LogLevel } from '../log.js';
import { mirrorsSchema, resolveMirrorPaths, type MirrorConfig } from './mirrors.js';

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

const UUID_OR_EMPTY = '^$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

/** A token bucket of failed logins: `burst` at once, then `per_minute`. */
function rateSpec(burst: number, perMinute: number) {
  return {
    type: 'object',
    additionalProperties: false,
    properties: {
      burst: { description: 'Failures allowed at once.', type: 'integer', minimum: 1, default: burst },
      per_minute: { description: 'Failures allowed per minute after the burst.', type: 'number', exclusiveMinimum: 0, default: perMinute },
    },
    default: {},
  } as const;
}

/** The schema of config.json; docs/configuration.md is generated from it. */
export const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    listen_port: { description: 'TCP port to listen on, or the path of a unix socket (for nginx in front).',
      oneOf: [
        { type: 'integer', minimum: 0, maximum: 65535 },
        { type: 'string', minLength: 1 },
      ],
      default: 8080,
    },
    listen_address: { description: "Address the TCP port is bound to (the repository's config.json uses 127.0.0.1).", type: 'string', minLength: 1, default: '0.0.0.0' },
    socket_mode: { description: "Octal permission bits of the unix socket, so that nginx's workers can connect.", type: 'string', pattern: '^0?[0-7]{3}$', default: '0666' },
    serve_dir: { description: 'The image folder: one sub-folder per image, named by its uuid (relative to the config file).', type: 'string', minLength: 1, default: '.' },
    prefix: { description: "Absolute URLs in answers are prefix + the request's Host header + suffix, unless base_url is set.", type: 'string', default: 'http://' },
    suffix: { description: 'See prefix.', type: 'string', default: '' },
    base_url: { description: "A fixed public URL such as https://images.example.net for every absolute URL the server writes; when set, it wins over prefix and suffix.",
      oneOf: [{ type: 'null' }, { type: 'string', pattern: '^https?://[^/?#\\s]+(/[^?#\\s]*)?$' }],
      default: null,
    },
    x_accel_redirect: {
      description: 'Behind nginx: the internal location over serve_dir (e.g. "/_image_files/") that whole-file downloads are handed to with X-Accel-Redirect, after this server has checked the request and set every header; null: the server sends the bytes itself.',
      oneOf: [{ type: 'null' }, { type: 'string', pattern: '^/([A-Za-z0-9._~-]+/)+$' }],
      default: null,
    },
    trust_proxy: { description: 'Honour X-Forwarded-Host and X-Forwarded-Proto (only behind a proxy you run).', type: 'boolean', default: false },
    loglevel: { description: 'Lowest level logged.', enum: [...LOG_LEVELS], default: 'info' },
    'image-creator': { description: 'creator_name in the DSAPI views of images that have none.', type: 'string', default: '' },
    'image-creator-uuid': { description: 'Owner of images published without one, and creator_uuid in the DSAPI views.', type: 'string', pattern: UUID_OR_EMPTY, default: '' },
    'image-vendor-uuid': { description: 'vendor_uuid in the DSAPI views of images that have none.', type: 'string', pattern: UUID_OR_EMPTY, default: '' },
    comments: { description: 'Free-form notes; ignored.', type: 'object', default: {} },
    drain_timeout_ms: { description: 'How long SIGTERM lets in-flight requests finish before their connections are closed.', type: 'integer', minimum: 0, default: 20_000 },
    keep_alive_timeout_ms: { description: 'How long an idle keep-alive connection stays open (imgadm reuses them).', type: 'integer', minimum: 1000, default: 65_000 },
    headers_timeout_ms: { description: 'A request whose headers have not all arrived after this long gets 408 RequestTimeout and is closed.', type: 'integer', minimum: 1000, default: 60_000 },
    idle_timeout_ms: { description: "A connection that moves no byte either way for this long is closed: a transfer must make progress, however slowly, not finish in a fixed time. Long enough for zfs receive to stall imgadm's reading of a download (as nginx's send_timeout in the example).", type: 'integer', minimum: 1000, default: 600_000 },
    scan_interval_ms: { description: 'How often serve_dir itself is checked for image folders added or removed by hand (rsync, cp, rm); folders that were incomplete are retried as often.', type: 'integer', minimum: 100, default: 1000 },
    full_scan_interval_ms: { description: 'How long the rolling sweep takes to re-check every image folder in full (manifest, server.json, files), spread evenly; where inotify watches every folder (Linux), the sweep is a safety net and takes 12 times as long.', type: 'integer', minimum: 1000, default: 300_000 },
    watch_fs: { description: 'On Linux, hear of changes in serve_dir and in each image folder through inotify, at once; false: the checks and the sweep only.', type: 'boolean', default: true },
    md5_rate_mb_s: { description: 'MB/s the background pass reads at to compute the MD5 of files written by legacy tools.', type: 'number', exclusiveMinimum: 0, default: 20 },
    md5_wait_ms: { description: 'How long a download of a file whose MD5 is not known yet waits for it (the file is hashed first) before it is sent without Content-MD5.', type: 'integer', minimum: 0, default: 30_000 },
    users: { description: 'Users who may write: name → {"password": a hash printed by `image-server passwd NAME`}.',
      type: 'object',
      default: {},
      additionalProperties: {
        type: 'object',
        required: ['password'],
        additionalProperties: false,
        properties: { password: { type: 'string', pattern: PASSWORD_HASH_PATTERN } },
      },
      propertyNames: { pattern: '^[^:\\s]+$' },
    },
    tokens: { description: 'Bearer tokens by name, stored as hashes printed by `image-server token NAME`.',
      type: 'object',
      default: {},
      additionalProperties: { type: 'string', pattern: TOKEN_HASH_PATTERN },
    },
    read_auth: { description: 'Require credentials for reads too (imgadm cannot send them: use for private catalogs only).', type: 'boolean', default: false },
    auth_workers: { description: 'Threads that check passwords (scrypt), apart from the threads that read and write files.', type: 'integer', minimum: 1, maximum: 16, default: 1 },
    auth_queue_max: { description: 'Password checks that may wait for a thread; more at once get 503 with Retry-After.', type: 'integer', minimum: 0, default: 32 },
    auth_client_failures: { ...rateSpec(10, 10), description: 'Wrong passwords one client address (an IPv6 client: its /64) may send at once, then per minute; beyond that 429 TooManyRequests with Retry-After.' },
    auth_user_failures: { ...rateSpec(20, 20), description: 'The same per user name, from all clients together (unknown names count the same way).' },
    auth_tracked_max: { description: 'Client addresses and user names the failure counts are kept for, each; the least recently failed are forgotten first.', type: 'integer', minimum: 1, default: 10_000 },
    auth_cache_seconds: { description: 'How long a verified password is remembered (as a keyed hash), so later requests skip scrypt and the limits; 0: never.', type: 'integer', minimum: 0, default: 300 },
    default_public: { description: 'Whether images published without a `public` field are visible to anonymous clients.', type: 'boolean', default: true },
    max_upload_bytes: { description: 'Largest image file accepted, from any way in.', type: 'integer', minimum: 1, default: 20 * 1024 ** 3 },
    unactivated_ttl_hours: { description: 'An image created but never activated is removed after this long.', type: 'number', exclusiveMinimum: 0, default: 24 },
    metrics: { description: 'GET /metrics: open to all (public), for authenticated users only (auth), or not served (off).', enum: ['public', 'auth', 'off'], default: 'public' },
    scrub_rate_mb_s: { description: 'Background integrity scrub: MB/s of image files re-hashed (0: off).', type: 'number', minimum: 0, default: 0 },
    scrub_interval_hours: { description: 'How often the scrub starts a new sweep.', type: 'number', exclusiveMinimum: 0, default: 24 },
    scrub_repair: { description: 'Whether the scrub disables an image whose file no longer matches its manifest. In a cluster the scrub always sets a corrupt copy aside in .quarantine/ instead, and the server pulls a good one from a peer.', type: 'boolean', default: false },
    mirrors: { ...mirrorsSchema, description: 'Upstream catalogs to copy images from, each on its interval (docs/mirroring.md).' },
    channels: { ...channelsSchema, description: 'Release channels images are published into and listed from, as in sdc-imgapi (docs/publishing.md#channels); absent, the server has none and ignores `channel` parameters.' },
    cluster: { ...clusterSchema, description: 'Replication through etcd (docs/cluster.md); absent, the server runs alone.' },
  },
} as const;

const ajv = new Ajv({ useDefaults: true, allErrors: false, strict: true });
const validate = ajv.compile(CONFIG_SCHEMA);

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
