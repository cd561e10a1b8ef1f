/*
 * Turns a manifest.json as found on disk (v1 as the original import-image,
 * dsapid or the DSAPI docs wrote it, or v2) into the canonical Manifest, and
 * lists every reason imgadm would choke on it. Pure: the store supplies the
 * bytes and decides what to do with the problems.
 *
 * The v1 rules follow imgmanifest's upgradeTo2 (docs/protocol.md §2.3) with one
 * deliberate difference: an `.xz` file with no explicit compression is taken
 * as xz rather than "none", because that is what its bytes are.
 */
import {
  COMPRESSIONS,
  STATES,
  UUID_RE,
  ZERO_UUID,
  isObject,
  type Compression,
  type ImageState,
  type JsonObject,
  type LegacyFields,
  type Manifest,
  type ManifestFile,
} from './types.js';

export interface Normalized {
  manifest: Manifest;
  legacy: LegacyFields | null;
  /** files[i].path as written in the manifest, when it names one. */
  paths: (string | undefined)[];
  /** Indexes of files whose compression neither the manifest nor the name tells. */
  unknownCompression: number[];
}

export type NormalizeResult = { ok: true; value: Normalized } | { ok: false; problems: string[] };

const V1_ONLY = ['creator_uuid', 'vendor_uuid', 'creator_name', 'cloud_name', 'creator_admin',
  'restricted_to_uuid', 'owner_uuid', 'platform_type', 'created_at', 'updated_at', '_url'];

const PUBLISHED_AT_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/;
const MINUTE_PRECISION_RE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})Z$/;
const SHA1_RE = /^[0-9a-f]{40}$/;

/** A date imgadm and IMGAPI validators accept, or undefined if it is no date. */
export function normalizeDate(value: string): string | undefined {
  if (PUBLISHED_AT_RE.test(value)) return value;
  const fixed = value.replace(MINUTE_PRECISION_RE, '$1:00Z');
  const ms = Date.parse(fixed);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}

export function compressionFromName(name: string | undefined): Compression | undefined {
  if (!name) return undefined;
  if (/\.(gz|tgz)$/i.test(name)) return 'gzip';
  if (/\.(bz2|bz|tbz2?)$/i.test(name)) return 'bzip2';
  if (/\.(xz|txz)$/i.test(name)) return 'xz';
  return undefined;
}

export function isCompression(v: unknown): v is Compression {
  return typeof v === 'string' && (COMPRESSIONS as readonly string[]).includes(v);
}

export function normalizeManifest(raw: unknown, fallbackDate: string): NormalizeResult {
  if (!isObject(raw)) return { ok: false, problems: ['manifest is not a JSON object'] };
  const problems: string[] = [];
  const isV1 = raw.v === undefined || Number(raw.v) < 2;
  if (isV1) checkV1(raw, problems);
  else if (!(Number(raw.v) >= 2)) problems.push(`"v" is not a number: ${JSON.stringify(raw.v)}`);

  const m: JsonObject = { ...raw };
  const legacy = isV1 ? upgradeV1(m) : null;
  // A hand-written v2 manifest often has no owner; IMGAPI's "unset" owner fits.
  if (!isV1 && m.owner === undefined) m.owner = ZERO_UUID;
  const files = normalizeFiles(m.files, problems);
  const state = stateOf(m, isV1, problems);
  const disabled = m.disabled === true || m.disabled === 'true';
  const manifest = { ...m, v: 2, state, disabled, files: files.files } as JsonObject;
  manifest.public = m.public === undefined ? true : m.public === true || m.public === 'true';
  checkIdentity(manifest, problems);
  setPublishedAt(manifest, state, fallbackDate, problems);
  if (state !== 'unactivated' && state !== 'creating' && state !== 'failed') checkActivated(files.files, problems);
  if (manifest.type === 'docker') checkDocker(manifest, problems);
  if (manifest.image_size !== undefined) manifest.image_size = Number(manifest.image_size);
  for (const key of Object.keys(manifest)) if (manifest[key] === null) delete manifest[key];
  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    value: {
      manifest: manifest as unknown as Manifest,
      legacy,
      paths: files.paths,
      unknownCompression: files.unknownCompression,
    },
  };
}

function checkV1(raw: JsonObject, problems: string[]): void {
  if (typeof raw.creator_uuid !== 'string' || raw.creator_uuid === '') {
    problems.push('v1 manifest has no creator_uuid (imgadm: manifest does not have a "v" field)');
  }
  if (raw.owner !== undefined && raw.creator_uuid !== undefined) {
    problems.push('v1 manifest has both owner and creator_uuid');
  }
  if (raw.restricted_to_uuid !== undefined && raw.public !== undefined) {
    problems.push('v1 manifest has both restricted_to_uuid and public');
  }
}

/** imgmanifest's upgradeTo2, in place; returns the v1 facts it removes. */
function upgradeV1(m: JsonObject): LegacyFields {
  const legacy: LegacyFields = {};
  for (const key of ['creator_uuid', 'creator_name', 'vendor_uuid', 'cloud_name'] as const) {
    if (typeof m[key] === 'string') legacy[key] = m[key] as string;
  }
  m.owner = m.creator_uuid;
  if (typeof m.restricted_to_uuid === 'string') {
    m.public = false;
    m.acl = [m.restricted_to_uuid];
  }
  if (m.published_at === undefined && m.created_at !== undefined) m.published_at = m.created_at;
  for (const key of V1_ONLY) delete m[key];
  return legacy;
}

function normalizeFiles(value: unknown, problems: string[]) {
  const files: ManifestFile[] = [];
  const paths: (string | undefined)[] = [];
  const unknownCompression: number[] = [];
  if (value === undefined) return { files, paths, unknownCompression };
  if (!Array.isArray(value)) {
    problems.push('"files" is not an array');
    return { files, paths, unknownCompression };
  }
  value.forEach((f: unknown, i) => {
    if (!isObject(f)) {
      problems.push(`files[${i}] is not an object`);
      return;
    }
    const path = typeof f.path === 'string' ? f.path : undefined;
    const urlName = typeof f.url === 'string' ? f.url.split('/').pop() : undefined;
    let compression = isCompression(f.compression) ? f.compression : undefined;
    if (f.compression !== undefined && compression === undefined) {
      problems.push(`files[${i}].compression is not one of ${COMPRESSIONS.join(', ')}`);
    }
    compression ??= compressionFromName(path ?? urlName);
    if (compression === undefined) unknownCompression.push(i);
    const file: JsonObject = {
      sha1: typeof f.sha1 === 'string' ? f.sha1.toLowerCase() : f.sha1,
      size: f.size,
      compression: compression ?? 'none',
    };
    for (const key of ['dataset_guid', 'digest', 'uncompressedDigest']) {
      if (typeof f[key] === 'string') file[key] = f[key];
    }
    files.push(file as unknown as ManifestFile);
    paths.push(path);
  });
  return { files, paths, unknownCompression };
}

function stateOf(m: JsonObject, isV1: boolean, problems: string[]): ImageState {
  const disabled = m.disabled === true || m.disabled === 'true';
  delete m.activated;
  if (isV1) return disabled ? 'disabled' : 'active';
  if (m.state === undefined) return disabled ? 'disabled' : 'active';
  if (!(STATES as readonly unknown[]).includes(m.state)) {
    problems.push(`unknown state ${JSON.stringify(m.state)}`);
    return 'failed';
  }
  const state = m.state as ImageState;
  // An activated image's state follows its disabled flag, as in IMGAPI.
  if (state === 'active' || state === 'disabled') return disabled ? 'disabled' : 'active';
  return state;
}

function checkIdentity(m: JsonObject, problems: string[]): void {
  if (typeof m.uuid !== 'string' || !UUID_RE.test(m.uuid)) problems.push('uuid is not a lowercase UUID');
  if (typeof m.owner !== 'string' || m.owner === '') problems.push('owner is missing');
  for (const key of ['name', 'version', 'type', 'os']) {
    if (typeof m[key] !== 'string' || m[key] === '') problems.push(`${key} is missing or not a string`);
  }
  if (m.origin !== undefined && (typeof m.origin !== 'string' || !UUID_RE.test(m.origin))) {
    problems.push('origin is not a lowercase UUID');
  }
}

function setPublishedAt(m: JsonObject, state: ImageState, fallback: string, problems: string[]): void {
  if (m.published_at === undefined) {
    if (state === 'active' || state === 'disabled') m.published_at = fallback;
    return;
  }
  const date = typeof m.published_at === 'string' ? normalizeDate(m.published_at) : undefined;
  if (date === undefined) problems.push(`published_at is not a date: ${JSON.stringify(m.published_at)}`);
  else m.published_at = date;
}

function checkActivated(files: ManifestFile[], problems: string[]): void {
  if (files.length === 0) problems.push('an activated image has no files');
  files.forEach((f, i) => {
    if (typeof f.size !== 'number' || !Number.isSafeInteger(f.size) || f.size < 0) {
      problems.push(`files[${i}].size is not a number (imgadm asserts it is)`);
    }
    if (typeof f.sha1 !== 'string' || !SHA1_RE.test(f.sha1)) problems.push(`files[${i}].sha1 is not a SHA-1`);
  });
}

function checkDocker(m: JsonObject, problems: string[]): void {
  const tags = m.tags;
  if (!isObject(tags) || typeof tags['docker:id'] !== 'string') {
    problems.push('docker image without tags["docker:id"] (it would crash imgadm avail)');
  }
}
