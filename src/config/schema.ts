/*
 * The schema of config.json: what config.ts checks a configuration against
 * (compiled at build time by scripts/compile-config-schema.js) and what
 * docs/configuration.md is generated from.
 */
import { channelsSchema } from './channels.js';
import { clusterSchema } from './cluster.js';
import { PASSWORD_HASH_PATTERN, TOKEN_HASH_PATTERN } from '../credentials.js';
import { LOG_LEVELS } from '../log.js';
import { mirrorsSchema } from './mirrors.js';

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
