/*
 * The catalog's data: manifests as flat records, their indexes, the
 * orders the table sorts by, and the rows it shows. Pure, for the unit
 * tests.
 */
import { collator } from './format.js';

/** A manifest as the table needs it: strings for every column, size -1 when there is no file, and a search haystack. */
export function toRecord(m) {
  const file = Array.isArray(m.files) && m.files[0] && typeof m.files[0] === 'object' ? m.files[0] : null;
  const str = (v) => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));
  const r = {
    m,
    uuid: str(m.uuid),
    name: str(m.name),
    version: str(m.version),
    os: str(m.os),
    type: str(m.type),
    size: file && typeof file.size === 'number' ? file.size : -1,
    published: str(m.published_at),
    state: str(m.state),
    desc: str(m.description),
    isPublic: m.public !== false,
    channels: Array.isArray(m.channels) ? m.channels.filter((c) => typeof c === 'string') : [],
  };
  r.hay = `${r.name}\u0000${r.version}\u0000${r.uuid}\u0000${r.desc}\u0000${r.os}\u0000${r.type}\u0000${r.channels.join('\u0000')}`.toLowerCase();
  return r;
}

/** Newest published first; unpublished last; then the higher version first. */
export const byNewest = (a, b) => (a.published < b.published ? 1 : a.published > b.published ? -1 : collator.compare(b.version, a.version));

/**
 * The table's order by column `key`, ascending for dir 1 and descending for
 * -1; ties fall to name, version and uuid, so the order is total.
 */
export function comparator(key, dir) {
  return (a, b) => {
    let c;
    if (key === 'size') c = a.size - b.size;
    else if (key === 'published') c = a.published < b.published ? -1 : a.published > b.published ? 1 : 0;
    else c = collator.compare(a[key], b[key]);
    if (c === 0 && key !== 'name') c = collator.compare(a.name, b.name);
    if (c === 0 && key !== 'version') c = collator.compare(a.version, b.version);
    if (c === 0) c = a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0;
    return c * dir;
  };
}

/** ListImages' answer as records and their indexes: by uuid, by name (newest first), and by origin. */
export function indexCatalog(list) {
  const all = Array.isArray(list) ? list.filter((m) => m && typeof m === 'object').map(toRecord) : [];
  const byUuid = new Map();
  const byName = new Map();
  const dependents = new Map();
  for (const r of all) {
    byUuid.set(r.uuid, r);
    let group = byName.get(r.name);
    if (!group) byName.set(r.name, (group = []));
    group.push(r);
    if (typeof r.m.origin === 'string') {
      let deps = dependents.get(r.m.origin);
      if (!deps) dependents.set(r.m.origin, (deps = []));
      deps.push(r);
    }
  }
  for (const group of byName.values()) group.sort(byNewest);
  return { all, byUuid, byName, dependents };
}

/**
 * The rows to show, from records already sorted: each match, or with
 * `group` one head per name (its newest match) followed, when that name is
 * in `expanded`, by every matching version. Also says how many records
 * matched and in how many names.
 */
export function catalogRows(sorted, byName, { match, group = false, expanded = new Set() }) {
  const matched = sorted.filter(match);
  if (!group) return { rows: matched.map((r) => ({ kind: 'image', r, key: r.uuid })), matched: matched.length, groups: 0 };
  const names = new Set(matched.map((r) => r.name));
  const rows = [];
  for (const name of names) {
    const members = (byName.get(name) ?? []).filter(match);
    const g = { name, members, latest: members[0] };
    rows.push({ kind: 'group', g, r: g.latest, key: `group:${name}` });
    if (expanded.has(name) && members.length > 1) {
      for (const r of members) rows.push({ kind: 'member', g, r, key: r.uuid });
    }
  }
  return { rows, matched: matched.length, groups: names.size };
}

/**
 * GET /channels' answer as a list of {name, description, default}; a
 * server without channels answers an error or nothing of the kind, which
 * is no channel at all.
 */
export function channelList(answer) {
  if (!Array.isArray(answer)) return [];
  return answer.filter((c) => c && typeof c === 'object' && typeof c.name === 'string' && c.name)
    .map((c) => ({ name: c.name, description: typeof c.description === 'string' ? c.description : '', default: c.default === true }));
}

/** The default channel's name, '' when there is none. */
export const defaultChannel = (list) => list.find((c) => c.default)?.name ?? '';

/** The channels an image is in: its `channels`, or the default channel when it has none (as the server reads it). */
export function imageChannels(channels, fallback) {
  const named = Array.isArray(channels) ? channels.filter((c) => typeof c === 'string') : [];
  return named.length || !fallback ? named : [fallback];
}

/** The channels of `list` an image in `channels` can still be added to, in the list's order. */
export function joinableChannels(list, channels, fallback) {
  const current = imageChannels(channels, fallback);
  return list.filter((c) => !current.includes(c.name)).map((c) => c.name);
}
