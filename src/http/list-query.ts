/*
 * ListImages query parameters (docs/protocol.md §3.4): parsed and checked once
 * into a filter and a page. Unknown parameters are ignored (imgadm users
 * carry ?channel= in their source URLs); a bad value of a known one is a 422.
 */
import type { ParsedUrlQuery } from 'node:querystring';
import { errors } from '../errors.js';
import { STATES, UUID_RE } from '../manifest/types.js';
import type { ImageRecord, SortKey } from '../store/store.js';

export const MAX_LIMIT = 1000;

export interface ListQuery {
  /** Reads the record's facts; only tag filters build the manifest. */
  filter: (r: ImageRecord) => boolean;
  limit?: number;
  marker?: SortKey | number;
  descending: boolean;
}

function invalid(field: string, message: string): never {
  throw errors.InvalidParameter(message, { errors: [{ field, code: 'Invalid', message }] });
}

function single(query: ParsedUrlQuery, field: string): string | undefined {
  const value = query[field];
  if (Array.isArray(value)) invalid(field, `"${field}" may be given only once`);
  return value;
}

function many(query: ParsedUrlQuery, field: string): string[] {
  const value = query[field];
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function textMatcher(field: 'name' | 'version', value: string | undefined) {
  if (value === undefined) return undefined;
  if (value === '' || value === '~') invalid(field, `"${field}" must not be empty`);
  return value.startsWith('~')
    ? (r: ImageRecord) => r.facts[field].includes(value.slice(1))
    : (r: ImageRecord) => r.facts[field] === value;
}

export function parseListQuery(
  query: ParsedUrlQuery,
  sortKey: (uuid: string) => SortKey | undefined,
  includePrivate: boolean,
): ListQuery {
  const tests: ((r: ImageRecord) => boolean)[] = [];
  if (!includePrivate) tests.push((r) => r.isPublic);
  const state = single(query, 'state') ?? 'active';
  if (state !== 'all' && !(STATES as readonly string[]).includes(state)) {
    invalid('state', `invalid state "${state}": must be one of ${[...STATES, 'all'].join(', ')}`);
  }
  if (state !== 'all') tests.push((r) => r.state === state);
  for (const field of ['name', 'version'] as const) {
    const test = textMatcher(field, single(query, field));
    if (test) tests.push(test);
  }
  const type = single(query, 'type');
  if (type !== undefined) {
    tests.push(type.startsWith('!') ? (r) => r.facts.type !== type.slice(1) : (r) => r.facts.type === type);
  }
  const os = single(query, 'os');
  if (os !== undefined) tests.push((r) => r.facts.os === os);
  const owner = single(query, 'owner');
  if (owner !== undefined) {
    if (!UUID_RE.test(owner)) invalid('owner', `invalid owner "${owner}": must be a UUID`);
    tests.push((r) => r.facts.owner === owner);
  }
  const pub = single(query, 'public');
  if (pub !== undefined) {
    if (pub !== 'true' && pub !== 'false') invalid('public', `invalid public "${pub}": must be true or false`);
    tests.push((r) => r.isPublic === (pub === 'true'));
  }
  for (const [key, raw] of Object.entries(query)) {
    if (!key.startsWith('tag.') || key.length === 4) continue;
    const tag = key.slice(4);
    for (const value of Array.isArray(raw) ? raw : [raw ?? '']) tests.push((r) => tagMatches(r.manifest.tags, tag, value));
  }
  for (const tag of many(query, 'billing_tag')) tests.push((r) => r.manifest.billing_tags?.includes(tag) ?? false);
  const result: ListQuery = { filter: (r) => tests.every((t) => t(r)), descending: parseSort(single(query, 'sort')) };
  const limit = parseLimit(single(query, 'limit'));
  if (limit !== undefined) result.limit = limit;
  const marker = parseMarker(single(query, 'marker'), sortKey);
  if (marker !== undefined) result.marker = marker;
  return result;
}

function tagMatches(tags: Record<string, unknown> | undefined, tag: string, value: string): boolean {
  const actual = tags?.[tag];
  if (actual === undefined || actual === null || typeof actual === 'object') return false;
  return String(actual) === value;
}

function parseSort(sort: string | undefined): boolean {
  if (sort === undefined || sort === 'published_at' || sort === 'published_at.asc') return false;
  if (sort === 'published_at.desc') return true;
  return invalid('sort', `invalid sort "${sort}": must be published_at, published_at.asc or published_at.desc`);
}

function parseLimit(limit: string | undefined): number | undefined {
  if (limit === undefined) return undefined;
  if (!/^\d{1,9}$/.test(limit) || Number(limit) < 1) invalid('limit', `invalid limit "${limit}": must be a positive integer`);
  return Math.min(Number(limit), MAX_LIMIT);
}

function parseMarker(marker: string | undefined, find: (uuid: string) => SortKey | undefined) {
  if (marker === undefined) return undefined;
  if (UUID_RE.test(marker)) {
    return find(marker) ?? invalid('marker', `invalid marker "${marker}": no such image`);
  }
  const ms = /^\d{4}-\d{2}-\d{2}/.test(marker) ? Date.parse(marker) : NaN;
  if (Number.isNaN(ms)) invalid('marker', `invalid marker "${marker}": must be an image UUID or a date`);
  return ms;
}

/** The page a ListImages query asks for, from the index's (published_at, uuid) order. */
export function selectImages(sorted: readonly ImageRecord[], q: ListQuery): ImageRecord[] {
  const n = sorted.length;
  const out: ImageRecord[] = [];
  for (let k = 0; k < n; k++) {
    const r = sorted[q.descending ? n - 1 - k : k]!;
    if (q.marker !== undefined && !atOrPastMarker(r, q.marker, q.descending)) continue;
    if (!q.filter(r)) continue;
    out.push(r);
    if (q.limit !== undefined && out.length >= q.limit) break;
  }
  return out;
}

/** The marker is inclusive, as sdc-clients' paging expects (it drops the repeat). */
function atOrPastMarker(r: ImageRecord, marker: SortKey | number, descending: boolean): boolean {
  const cmp = typeof marker === 'number'
    ? r.publishedMs - marker
    : r.publishedMs - marker.publishedMs || (r.uuid < marker.uuid ? -1 : r.uuid > marker.uuid ? 1 : 0);
  return descending ? cmp <= 0 : cmp >= 0;
}
