/*
 * What an upstream offers, in the form a mirror copies: its listing (IMGAPI
 * paged exactly as sdc-clients pages it, protocol.md §3.4; DSAPI in one
 * GET /datasets, each v1 manifest upgraded as imgadm upgrades it, §2.3),
 * single manifests for origins, and the filters that pick images.
 *
 * Upstream manifests are taken as they are, with the fixes a real catalog
 * needs: dsapid's nanosecond dates are cut to milliseconds, its hex
 * files[].md5 is kept to check the bytes with, and a v1 file whose name
 * says .xz gets compression xz rather than imgmanifest's "none" (§2.3,
 * the pitfall imgadm would choke on when installing).
 */
import { compressionFromName, isCompression, normalizeDate } from '../manifest/normalize.js';
import { UUID_RE, isObject, type Compression, type JsonObject, type LegacyFields } from '../manifest/types.js';
import { upgradeManifest } from '../manifest/upgrade.js';
import { UpstreamError, type Upstream } from './upstream.js';

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

export class BadManifest extends UpstreamError {
  constructor(readonly uuid: string | undefined, message: string, readonly raw?: unknown) {
    super(message, { retryable: false, unhealthy: false });
    this.name = 'BadManifest';
  }

  /** Whether the image would have been picked, as far as its broken manifest tells. */
  wanted(filters: Filters): boolean {
    const raw = isObject(this.raw) ? this.raw : {};
    const state = raw.state ?? (raw.disabled === true || raw.disabled === 'true' ? 'disabled' : 'active');
    if (state !== 'active') return false;
    const field = (key: string) => (typeof raw[key] === 'string' ? raw[key] : '');
    const name = field('name');
    if (filters.name?.length && !filters.name.some((n) => (n.startsWith('~') ? name.includes(n.slice(1)) : name === n))) return false;
    if (filters.os?.length && !filters.os.includes(field('os'))) return false;
    return !filters.imageType?.length || filters.imageType.includes(field('type'));
  }
}

const SHA1_RE = /^[0-9a-f]{40}$/;
const MD5_HEX_RE = /^[0-9a-f]{32}$/;

/** Turns one upstream manifest into an UpstreamImage, or says why it cannot be mirrored. */
export function toUpstreamImage(upstream: Upstream, raw: unknown): UpstreamImage {
  if (!isObject(raw)) throw new BadManifest(undefined, 'a manifest is not a JSON object', raw);
  const uuid = typeof raw.uuid === 'string' ? raw.uuid.toLowerCase() : undefined;
  if (!uuid || !UUID_RE.test(uuid)) throw new BadManifest(undefined, `a manifest has no valid uuid: ${JSON.stringify(raw.uuid)}`, raw);
  const rawFile = Array.isArray(raw.files) && isObject(raw.files[0]) ? raw.files[0] : undefined;
  let manifest: JsonObject;
  try {
    manifest = raw.v === undefined && raw.creator_uuid ? upgradeManifest(raw) : structuredClone(raw);
  } catch (err) {
    throw new BadManifest(uuid, `image ${uuid}: cannot upgrade the v1 manifest: ${(err as Error).message}`, raw);
  }
  if (manifest.v === undefined || !(Number(manifest.v) >= 2)) {
    throw new BadManifest(uuid, `image ${uuid}: manifest does not have a "v" field`, raw);
  }
  manifest.uuid = uuid;
  if (typeof manifest.published_at === 'string') {
    const date = normalizeDate(manifest.published_at);
    if (date === undefined) throw new BadManifest(uuid, `image ${uuid}: published_at is not a date: ${manifest.published_at}`, raw);
    manifest.published_at = date;
  }
  const file = Array.isArray(manifest.files) && isObject(manifest.files[0]) ? manifest.files[0] : undefined;
  const sha1 = typeof file?.sha1 === 'string' ? file.sha1.toLowerCase() : '';
  const size = file?.size;
  if (!SHA1_RE.test(sha1)) throw new BadManifest(uuid, `image ${uuid}: files[0] has no sha1 to verify the file with`, raw);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) {
    throw new BadManifest(uuid, `image ${uuid}: files[0].size is not a positive number`, raw);
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
  /** Manifests in the listing that cannot be mirrored, and why. */
  rejected: BadManifest[];
  /** The list requests made, for logs (and tests). */
  requests: number;
}

export type Fetch = (url: URL) => Promise<unknown>;

/**
 * Every image the upstream lists. IMGAPI: the first request without a
 * limit; while a page is full, the next asks for marker=<last uuid> and
 * limit=1000, drops the marker itself when it comes back first (the marker
 * is inclusive), and stops on a short or empty page or when the last uuid
 * does not move (a server that ignores the marker). Filters the upstream
 * can apply exactly are sent along; they are applied here again anyway.
 */
export async function listUpstream(upstream: Upstream, filters: Filters, fetch: Fetch): Promise<Listing> {
  const listing: Listing = { images: [], rejected: [], requests: 0 };
  const seen = new Set<string>();
  const take = (raws: unknown[]) => {
    for (const raw of raws) {
      try {
        const image = toUpstreamImage(upstream, raw);
        if (seen.has(image.uuid)) continue;
        seen.add(image.uuid);
        listing.images.push(image);
      } catch (err) {
        if (!(err instanceof BadManifest)) throw err;
        listing.rejected.push(err);
      }
    }
  };
  if (upstream.type === 'dsapi') {
    listing.requests++;
    take(asArray(await fetch(upstream.listUrl()), upstream.listUrl()));
    return listing;
  }
  const params: Record<string, string> = {};
  if (filters.name?.length === 1) params.name = filters.name[0]!;
  if (filters.os?.length === 1) params.os = filters.os[0]!;
  if (filters.imageType?.length === 1) params.type = filters.imageType[0]!;
  let marker: string | undefined;
  for (;;) {
    const url = upstream.listUrl(marker ? { ...params, marker, limit: String(PAGE) } : params);
    listing.requests++;
    const page = asArray(await fetch(url), url);
    const full = page.length >= PAGE;
    if (marker && isObject(page[0]) && page[0].uuid === marker) page.shift();
    if (page.length === 0) break;
    const last = page[page.length - 1];
    const next = isObject(last) && typeof last.uuid === 'string' ? last.uuid : undefined;
    if (marker && marker === next) break;
    take(page);
    if (!full || next === undefined) break;
    marker = next;
  }
  return listing;
}

function asArray(body: unknown, url: URL): unknown[] {
  if (!Array.isArray(body)) throw new UpstreamError(`${url.origin}${url.pathname}: the listing is not a JSON array`, { retryable: false });
  return body;
}
