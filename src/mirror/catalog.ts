/*
 * What an upstream offers, in the form a mirror copies: its listing (IMGAPI
 * paged exactly as sdc-clients pages it, docs/protocol.md §3.4; DSAPI in one
 * GET /datasets, each v1 manifest upgraded as imgadm upgrades it, §2.3),
 * single manifests for origins, and the filters that pick images.
 *
 * Upstream manifests are taken as they are, with the fixes a real catalog
 * needs: dsapid's nanosecond dates are cut to milliseconds, its hex
 * files[].md5 is kept to check the bytes with, and a v1 file whose name
 * says .xz gets compression xz rather than imgmanifest's "none" (§2.3,
 * the pitfall imgadm would choke on when installing).
 */
import { setImmediate } from 'node:timers/promises';
import { UpstreamError } from '../fetch/errors.js';
import { compressionFromName, isCompression, normalizeDate } from '../manifest/normalize.js';
import { UUID_RE, isObject, type Compression, type JsonObject, type LegacyFields } from '../manifest/types.js';
import { upgradeManifest } from '../manifest/upgrade.js';
import type { ArrayEntry } from './jsonarray.js';
import type { Upstream } from './upstream.js';

/** sdc-clients' page size, and the most IMGAPI returns without a limit. */
export const PAGE = 1000;

export interface UpstreamImage {
  uuid: string;
  /** The v2 manifest as the upstream describes it (upgraded from v1 for DSAPI). */
  manifest: JsonObject;
  name: string;
  version: string;
  state: string;
  origin?: string;
  sha1: string;
  size: number;
  compression: Compression;
  /** Hex MD5 of the file when the upstream gives one (dsapid). */
  md5?: string;
  fileUrl: URL;
  /** v1 facts the upgrade drops, kept for this server's DSAPI view. */
  legacy?: LegacyFields;
}

export interface Filters {
  /** Exact names, or "~part" for a substring, as IMGAPI's name filter. */
  name?: readonly string[];
  os?: readonly string[];
  /** Image types (zone-dataset, lx-dataset, zvol, …). */
  imageType?: readonly string[];
}

/** A listed manifest that cannot be mirrored, and why: plain data, as a listing may hold millions. */
export interface Rejection {
  rejected: true;
  uuid?: string;
  message: string;
  raw?: unknown;
}

/** A single manifest (an origin's) that cannot be mirrored. */
export class BadManifest extends UpstreamError {
  constructor(readonly uuid: string | undefined, message: string) {
    super(message, { retryable: false, unhealthy: false });
    this.name = 'BadManifest';
  }
}

/** Whether the image would have been picked, as far as its broken manifest tells. */
export function wanted(rejection: Rejection, filters: Filters): boolean {
  const raw = isObject(rejection.raw) ? rejection.raw : {};
  const state = raw.state ?? (raw.disabled === true || raw.disabled === 'true' ? 'disabled' : 'active');
  if (state !== 'active') return false;
  const field = (key: string) => (typeof raw[key] === 'string' ? raw[key] : '');
  const name = field('name');
  if (filters.name?.length && !filters.name.some((n) => (n.startsWith('~') ? name.includes(n.slice(1)) : name === n))) return false;
  if (filters.os?.length && !filters.os.includes(field('os'))) return false;
  return !filters.imageType?.length || filters.imageType.includes(field('type'));
}

const SHA1_RE = /^[0-9a-f]{40}$/;
const MD5_HEX_RE = /^[0-9a-f]{32}$/;

/** A value as a message may quote it: an upstream's junk can be a megabyte long. */
export function quoted(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Turns one upstream manifest into an UpstreamImage, or throws why it cannot be mirrored. */
export function toUpstreamImage(upstream: Upstream, raw: unknown): UpstreamImage {
  const image = readUpstreamImage(upstream, raw);
  if ('rejected' in image) throw new BadManifest(image.uuid, image.message);
  return image;
}

/** Turns one upstream manifest into an UpstreamImage, or says why it cannot be mirrored. */
export function readUpstreamImage(upstream: Upstream, raw: unknown): UpstreamImage | Rejection {
  const reject = (uuid: string | undefined, message: string): Rejection => ({ rejected: true, uuid, message, raw });
  if (!isObject(raw)) return reject(undefined, 'a manifest is not a JSON object');
  const uuid = typeof raw.uuid === 'string' ? raw.uuid.toLowerCase() : undefined;
  if (!uuid || !UUID_RE.test(uuid)) return reject(undefined, `a manifest has no valid uuid: ${quoted(raw.uuid)}`);
  const rawFile = Array.isArray(raw.files) && isObject(raw.files[0]) ? raw.files[0] : undefined;
  let manifest: JsonObject;
  try {
    manifest = raw.v === undefined && raw.creator_uuid ? upgradeManifest(raw) : structuredClone(raw);
  } catch (err) {
    return reject(uuid, `image ${uuid}: cannot upgrade the v1 manifest: ${(err as Error).message}`);
  }
  if (manifest.v === undefined || !(Number(manifest.v) >= 2)) {
    return reject(uuid, `image ${uuid}: manifest does not have a "v" field`);
  }
  manifest.uuid = uuid;
  if (typeof manifest.published_at === 'string') {
    const date = normalizeDate(manifest.published_at);
    if (date === undefined) return reject(uuid, `image ${uuid}: published_at is not a date: ${quoted(manifest.published_at)}`);
    manifest.published_at = date;
  }
  if (manifest.origin !== undefined && (typeof manifest.origin !== 'string' || !UUID_RE.test(manifest.origin.toLowerCase()))) {
    return reject(uuid, `image ${uuid}: origin is not a uuid: ${quoted(manifest.origin)}`);
  }
  const file = Array.isArray(manifest.files) && isObject(manifest.files[0]) ? manifest.files[0] : undefined;
  const sha1 = typeof file?.sha1 === 'string' ? file.sha1.toLowerCase() : '';
  const size = file?.size;
  if (!SHA1_RE.test(sha1)) return reject(uuid, `image ${uuid}: files[0] has no sha1 to verify the file with`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) {
    return reject(uuid, `image ${uuid}: files[0].size is not a positive number`);
  }
  const image: UpstreamImage = {
    uuid,
    manifest,
    name: String(manifest.name ?? ''),
    version: String(manifest.version ?? ''),
    state: typeof manifest.state === 'string' ? manifest.state : (manifest.disabled === true ? 'disabled' : 'active'),
    sha1,
    size,
    compression: compressionOf(raw, rawFile, file!),
    fileUrl: upstream.fileUrl(uuid, rawFile),
  };
  const md5 = typeof rawFile?.md5 === 'string' ? rawFile.md5.toLowerCase() : undefined;
  if (md5 && MD5_HEX_RE.test(md5)) image.md5 = md5;
  if (typeof manifest.origin === 'string') image.origin = manifest.origin.toLowerCase();
  if (raw.v === undefined) image.legacy = legacyOf(raw);
  return image;
}

function compressionOf(raw: JsonObject, rawFile: JsonObject | undefined, file: JsonObject): Compression {
  if (raw.v === undefined && rawFile && !isCompression(rawFile.compression)) {
    const name = typeof rawFile.path === 'string' ? rawFile.path
      : typeof rawFile.url === 'string' ? rawFile.url.split(/[?#]/)[0] : undefined;
    const byName = compressionFromName(name);
    if (byName) return byName;
  }
  return isCompression(file.compression) ? file.compression : 'none';
}

function legacyOf(raw: JsonObject): LegacyFields {
  const legacy: LegacyFields = {};
  for (const key of ['creator_uuid', 'creator_name', 'vendor_uuid', 'cloud_name'] as const) {
    if (typeof raw[key] === 'string' && raw[key] !== '') legacy[key] = raw[key] as string;
  }
  return legacy;
}

export function matches(image: UpstreamImage, filters: Filters): boolean {
  const m = image.manifest;
  if (filters.name?.length && !filters.name.some((n) => (n.startsWith('~') ? image.name.includes(n.slice(1)) : image.name === n))) {
    return false;
  }
  if (filters.os?.length && !filters.os.includes(String(m.os))) return false;
  if (filters.imageType?.length && !filters.imageType.includes(String(m.type))) return false;
  return true;
}

export interface Listing {
  images: UpstreamImage[];
  /** Manifests in the listing that cannot be mirrored. */
  rejected: number;
  /** The list requests made, for logs (and tests). */
  requests: number;
}

export interface ListingProgress {
  entries: number;
  rejected: number;
}

export interface ListingHooks {
  /** Each manifest that cannot be mirrored, as it is met. */
  rejected(rejection: Rejection): void;
  progress?(progress: ListingProgress): void;
}

/** GETs one listing answer and hands its elements to `consume` as they arrive, a chunk's worth at a time (again on a retry). */
export type FetchArray = <T>(url: URL, consume: (entries: AsyncIterable<ArrayEntry[]>) => Promise<T>) => Promise<T>;

/** A manifest's most; real ones are a few KiB. */
export const MAX_ENTRY_BYTES = 1024 * 1024;
/** Elements, and element bytes, judged between two turns of the event loop. */
const PACE_ENTRIES = 256;
const PACE_BYTES = 1024 * 1024;

/**
 * Every image the upstream lists. IMGAPI: the first request without a
 * limit; while a page is full, the next asks for marker=<last uuid> and
 * limit=1000, drops the marker itself when it comes back first (the marker
 * is inclusive), and stops on a short or empty page or when the last uuid
 * does not move (a server that ignores the marker). Filters the upstream
 * can apply exactly are sent along; they are applied here again anyway.
 *
 * Each element is parsed on its own as it arrives, and the work yields to
 * the event loop every few hundred elements, so a listing of any size
 * costs bounded memory and never stalls the server.
 */
export async function listUpstream(upstream: Upstream, filters: Filters, fetch: FetchArray, hooks: ListingHooks): Promise<Listing> {
  const listing: Listing = { images: [], rejected: 0, requests: 0 };
  const seen = new Set<string>();
  const progress: ListingProgress = { entries: 0, rejected: 0 };
  let sincePause = { entries: 0, bytes: 0 };
  /** Counts one element; true when it is time to let the event loop turn. */
  const due = (bytes: number): boolean => {
    progress.entries++;
    sincePause.entries++;
    sincePause.bytes += bytes;
    if (sincePause.entries < PACE_ENTRIES && sincePause.bytes < PACE_BYTES) return false;
    sincePause = { entries: 0, bytes: 0 };
    hooks.progress?.({ ...progress });
    return true;
  };
  const reject = (rejection: Rejection) => {
    listing.rejected++;
    progress.rejected++;
    hooks.rejected(rejection);
  };
  const take = (raw: unknown) => {
    const image = readUpstreamImage(upstream, raw);
    if ('rejected' in image) reject(image);
    else if (!seen.has(image.uuid)) {
      seen.add(image.uuid);
      listing.images.push(image);
    }
  };
  /** One answer: how many elements it had, and the uuid of its last. */
  const page = (url: URL, marker?: string) => {
    listing.requests++;
    return fetch(url, async (entries) => {
      let count = 0;
      let last: string | undefined;
      for await (const batch of entries) {
        for (const entry of batch) {
          count++;
          const parsed = parseEntry(entry);
          last = 'value' in parsed && isObject(parsed.value) && typeof parsed.value.uuid === 'string' ? parsed.value.uuid : undefined;
          if (!('value' in parsed)) reject(parsed);
          else if (!(count === 1 && marker !== undefined && last === marker)) take(parsed.value);
          if (due('bytes' in entry ? entry.bytes.length : entry.oversize)) await setImmediate();
        }
      }
      return { count, last };
    });
  };
  if (upstream.type === 'dsapi') {
    await page(upstream.listUrl());
    return listing;
  }
  const params: Record<string, string> = {};
  if (filters.name?.length === 1) params.name = filters.name[0]!;
  if (filters.os?.length === 1) params.os = filters.os[0]!;
  if (filters.imageType?.length === 1) params.type = filters.imageType[0]!;
  let marker: string | undefined;
  for (;;) {
    const url = upstream.listUrl(marker ? { ...params, marker, limit: String(PAGE) } : params);
    const { count, last } = await page(url, marker);
    if (count === 0 || (count === 1 && marker !== undefined && last === marker)) break;
    if (marker && marker === last) break;
    if (count < PAGE || last === undefined) break;
    marker = last;
  }
  return listing;
}

/** One element's value, or why it has none. */
function parseEntry(entry: ArrayEntry): { value: unknown } | Rejection {
  if (!('bytes' in entry)) return { rejected: true, message: `a manifest is larger than ${MAX_ENTRY_BYTES} bytes` };
  try {
    return { value: JSON.parse(entry.bytes.toString('utf8')) as unknown };
  } catch {
    return { rejected: true, message: 'a listed element is not JSON' };
  }
}
