/*
 * What a mirror run should do, decided without any I/O: from what the
 * upstream lists (and the origins fetched so far), what serve_dir has or
 * deleted, and the run's options, the planner picks the active images that
 * pass the filters (oldest first), walks each one's origin chain (origins
 * come along whatever their state or the filters, and are copied first;
 * a chain stops at the first image serve_dir already has), and says for
 * every picked image: copy it, it is here, it is here but must join the
 * run's channel, it was deleted here, or why it cannot be mirrored. An origin it does not know yet it asks for; the
 * executor fetches those and plans again.
 */
import { publishProblems } from '../manifest/publish.js';
import { isActivated } from '../manifest/states.js';
import { STATES, ZERO_UUID, isObject, type JsonObject, type Manifest } from '../manifest/types.js';
import { matches, type Filters, type UpstreamImage } from './catalog.js';

export type Role = 'selected' | 'origin';

export interface PlanEntry {
  image: UpstreamImage;
  role: Role;
  /** The planned images that have this one as their origin. */
  originOf: string[];
}

export interface LocalState {
  /** serve_dir has the image (or a folder by its uuid). */
  has(uuid: string): boolean;
  /** The image was deleted here: it is not brought back. */
  deleted(uuid: string): boolean;
  /** The image is here but not in the channel this run's copies land in. */
  outsideChannel(uuid: string): boolean;
}

/** An origin fetched on its own: its image, or why there is none ("does not exist upstream", …). */
export type FetchedOrigin = UpstreamImage | { missing: string };

export interface PlanOptions {
  filters: Filters;
  /** max_upload_bytes. */
  maxFileBytes: number;
}

export interface Skip {
  image: UpstreamImage;
  outcome: 'present' | 'deleted' | 'failed';
  error?: string;
}

export interface Plan {
  /** Active images that pass the filters. */
  selected: number;
  /** Copies to make, origins before the images built on them. */
  copies: PlanEntry[];
  /** Picked images that are not copied, and why. */
  skips: Skip[];
  /** Picked images here already, to be added to the run's channel (the upstream promoted them). */
  channelAdds: UpstreamImage[];
  /** Partial downloads never to be finished (their file is over max_upload_bytes). */
  dropPartials: UpstreamImage[];
  /** Origins neither listed nor fetched: fetch them and plan again (the rest of the plan waits for them). */
  fetch: string[];
}

/** The sdc-imgapi cap on origin chains. */
export const MAX_CHAIN = 100;

export function plan(listed: readonly UpstreamImage[], origins: ReadonlyMap<string, FetchedOrigin>, local: LocalState,
  options: PlanOptions): Plan {
  const known = new Map(listed.map((i) => [i.uuid, i]));
  const selected = listed
    .filter((i) => i.state === 'active' && matches(i, options.filters))
    .sort((a, b) => publishedMs(a) - publishedMs(b) || (a.uuid < b.uuid ? -1 : 1));
  const result: Plan = { selected: selected.length, copies: [], skips: [], channelAdds: [], dropPartials: [], fetch: [] };
  const entries = new Map<string, PlanEntry>();
  for (const image of selected) {
    if (entries.has(image.uuid)) {
      entries.get(image.uuid)!.role = 'selected';
      continue;
    }
    if (local.has(image.uuid)) {
      if (local.outsideChannel(image.uuid)) result.channelAdds.push(image);
      else result.skips.push({ image, outcome: 'present' });
      continue;
    }
    if (local.deleted(image.uuid)) {
      result.skips.push({ image, outcome: 'deleted' });
      continue;
    }
    const walk = chainOf(image, known, origins, local, entries);
    if ('fetch' in walk) {
      if (!result.fetch.includes(walk.fetch)) result.fetch.push(walk.fetch);
      continue;
    }
    const { chain } = walk;
    const problem = walk.problem ?? (chain.map((c, i) => refusals(c, i === 0 ? 'selected' : 'origin', options.maxFileBytes)
      .map((p) => `${c.uuid === image.uuid ? 'manifest' : `origin ${c.uuid}`}: ${p}`)).flat().join('; ') || undefined);
    if (problem) {
      result.dropPartials.push(...chain.filter((c) => c.size > options.maxFileBytes));
      result.skips.push({ image, outcome: 'failed', error: problem });
      continue;
    }
    for (let i = chain.length - 1; i >= 0; i--) {
      const c = chain[i]!;
      if (!entries.has(c.uuid)) entries.set(c.uuid, { image: c, role: i === 0 ? 'selected' : 'origin', originOf: [] });
      const parent = c.origin ? entries.get(c.origin) : undefined;
      if (parent && !parent.originOf.includes(c.uuid)) parent.originOf.push(c.uuid);
    }
  }
  result.copies = result.fetch.length > 0 ? [] : [...entries.values()];
  return result;
}

/** The image and the origins it needs copied, newest first; or why not; or the origin to fetch first. */
function chainOf(image: UpstreamImage, known: ReadonlyMap<string, UpstreamImage>, origins: ReadonlyMap<string, FetchedOrigin>,
  local: LocalState, planned: ReadonlyMap<string, PlanEntry>): { chain: UpstreamImage[]; problem?: string } | { fetch: string } {
  const chain = [image];
  for (let cur = image; cur.origin !== undefined;) {
    const origin: string = cur.origin;
    if (local.has(origin) || planned.has(origin)) break;
    if (local.deleted(origin)) return { chain, problem: `its origin ${origin} was deleted here` };
    if (chain.length >= MAX_CHAIN) return { chain, problem: `its origin chain is longer than ${MAX_CHAIN}` };
    if (chain.some((c) => c.uuid === origin)) return { chain, problem: `its origin chain loops at ${origin}` };
    const next = known.get(origin) ?? origins.get(origin);
    if (next === undefined) return { fetch: origin };
    if ('missing' in next) return { chain, problem: `its origin ${origin} ${next.missing}` };
    chain.push(next);
    cur = next;
  }
  return { chain };
}

/** Why this server would refuse the image, if it would. */
function refusals(image: UpstreamImage, role: Role, maxFileBytes: number): string[] {
  const problems = publishProblems(localManifest(image, role)).map((e) => (e.message ? `${e.field}: ${e.message}` : `${e.field} ${e.code}`));
  if (image.size > maxFileBytes) problems.push(`its file of ${image.size} bytes is larger than max_upload_bytes (${maxFileBytes})`);
  return problems;
}

function publishedMs(image: UpstreamImage): number {
  const ms = typeof image.manifest.published_at === 'string' ? Date.parse(image.manifest.published_at) : NaN;
  return Number.isNaN(ms) ? 0 : ms;
}

const FILE_EXTRAS = ['dataset_guid', 'digest', 'uncompressedDigest'];

/**
 * The manifest the copy is published with: the upstream's, with this
 * server's state rules. A picked image is active; an origin keeps its
 * state, so a disabled one stays disabled and an unactivated one
 * unactivated (the reaper never removes an origin).
 */
export function localManifest(image: UpstreamImage, role: Role, channel?: string): JsonObject {
  const m = structuredClone(image.manifest);
  delete m.activated;
  // The upstream's channels are its own; a copy lands in ours, if we have them.
  delete m.channels;
  if (channel !== undefined) m.channels = [channel];
  m.v = 2;
  m.uuid = image.uuid;
  if (typeof m.owner !== 'string' || m.owner === '') m.owner = ZERO_UUID;
  const state = role === 'selected' ? 'active' : image.state;
  if ((STATES as readonly string[]).includes(state) && isActivated(state as Manifest['state'])) {
    m.state = state;
    m.disabled = state === 'disabled';
    if (typeof m.published_at !== 'string') m.published_at = new Date().toISOString();
  } else {
    m.state = (STATES as readonly string[]).includes(state) ? state : 'unactivated';
  }
  const upstreamFile = Array.isArray(m.files) && isObject(m.files[0]) ? m.files[0] : {};
  const file: JsonObject = { sha1: image.sha1, size: image.size, compression: image.compression };
  for (const key of FILE_EXTRAS) if (typeof upstreamFile[key] === 'string') file[key] = upstreamFile[key];
  m.files = [file];
  if (image.origin) m.origin = image.origin;
  return m;
}
