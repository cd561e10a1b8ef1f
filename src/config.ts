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
import { clusterSchema, type ClusterConfig } from './cluster/schema.js';
import { PASSWORD_HASH_PATTERN, TOKEN_HASH_PATTERN } from './credentials.js';
import { LOG_LEVELS, type LogLevel } from './log.js';
import { mirrorsSchema, resolveMirrorPaths, type MirrorConfig } from './mirror/schema.js';

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
  loglevel: LogLevel;
  'image-creator': string;
  'image-creator-uuid': string;
  'image-vendor-uuid': string;
  comments: Record<string, unknown>;
  /** How long SIGTERM lets in-flight requests finish before closing them. */
  drain_timeout_ms: number;
  keep_alive_timeout_ms: number;
  scan_interval_ms: number;
  full_scan_interval_ms: number;
  /** Users who may write, with scrypt password hashes (`image-server passwd`). */
  users: Record<string, { password: string }>;
  /** Bearer tokens by name, stored as hashes (`image-server token`). */
  tokens: Record<string, string>;
  /** Require credentials for reads too. */
  read_auth: boolean;
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
  /** The file this was read from (absolute), for messages and `config`. */
  config_path: string;
}

const UUID_OR_EMPTY = '^$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    listen_port: {
      oneOf: [
        { type: 'integer', minimum: 0, maximum: 65535 },
        { type: 'string', minLength: 1 },
      ],
      default: 8080,
    },
    listen_address: { type: 'string', minLength: 1, default: '0.0.0.0' },
    socket_mode: { type: 'string', pattern: '^0?[0-7]{3}$', default: '0666' },
    serve_dir: { type: 'string', minLength: 1, default: '.' },
    prefix: { type: 'string', default: 'http://' },
    suffix: { type: 'string', default: '' },
    base_url: {
      oneOf: [{ type: 'null' }, { type: 'string', pattern: '^https?://[^/?#\\s]+(/[^?#\\s]*)?$' }],
      default: null,
    },
    trust_proxy: { type: 'boolean', default: false },
    loglevel: { enum: [...LOG_LEVELS], default: 'info' },
    'image-creator': { type: 'string', default: '' },
    'image-creator-uuid': { type: 'string', pattern: UUID_OR_EMPTY, default: '' },
    'image-vendor-uuid': { type: 'string', pattern: UUID_OR_EMPTY, default: '' },
    comments: { type: 'object', default: {} },
    drain_timeout_ms: { type: 'integer', minimum: 0, default: 20_000 },
    keep_alive_timeout_ms: { type: 'integer', minimum: 1000, default: 65_000 },
    scan_interval_ms: { type: 'integer', minimum: 100, default: 1000 },
    full_scan_interval_ms: { type: 'integer', minimum: 1000, default: 30_000 },
    users: {
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
    tokens: {
      type: 'object',
      default: {},
      additionalProperties: { type: 'string', pattern: TOKEN_HASH_PATTERN },
    },
    read_auth: { type: 'boolean', default: false },
    default_public: { type: 'boolean', default: true },
    max_upload_bytes: { type: 'integer', minimum: 1, default: 20 * 1024 ** 3 },
    unactivated_ttl_hours: { type: 'number', exclusiveMinimum: 0, default: 24 },
    metrics: { enum: ['public', 'auth', 'off'], default: 'public' },
    scrub_rate_mb_s: { type: 'number', minimum: 0, default: 0 },
    scrub_interval_hours: { type: 'number', exclusiveMinimum: 0, default: 24 },
    scrub_repair: { type: 'boolean', default: false },
    mirrors: mirrorsSchema,
    cluster: clusterSchema,
  },
} as const;

const ajv = new Ajv({ useDefaults: true, allErrors: false, strict: true });
const validate = ajv.compile(schema);

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
