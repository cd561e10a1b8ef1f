/*
 * Retention: keep the N newest active versions of each image name and
 * delete the older active ones, except any image that something kept still
 * needs as an origin (imgadm fetches the whole chain). Disabled and
 * unactivated images are never pruned: an operator put them there.
 */
import type { ImageRecord } from './store.js';
import type { ImageWriter, Provenance } from './writer.js';

export interface PruneOptions {
  keep: number;
  name?: string;
}

function newestFirst(a: ImageRecord, b: ImageRecord): number {
  return b.publishedMs - a.publishedMs || (a.uuid < b.uuid ? 1 : -1);
}

/** The images to delete, each after every image built on it. */
export function planPrune(records: readonly ImageRecord[], opts: PruneOptions): ImageRecord[] {
  if (!Number.isInteger(opts.keep) || opts.keep < 1) throw new Error('keep must be at least 1');
  const byName = new Map<string, ImageRecord[]>();
  for (const r of records) {
    if (r.state !== 'active' || (opts.name !== undefined && r.facts.name !== opts.name)) continue;
    byName.set(r.facts.name, [...(byName.get(r.facts.name) ?? []), r]);
  }
  const candidates = new Set([...byName.values()].flatMap((group) => group.sort(newestFirst).slice(opts.keep)));
  const byUuid = new Map(records.map((r) => [r.uuid, r]));
  const needed = new Set<string>();
  for (const r of records) {
    if (candidates.has(r)) continue;
    for (let origin = r.facts.origin; origin && !needed.has(origin); origin = byUuid.get(origin)?.facts.origin) {
      needed.add(origin);
    }
  }
  const doomed = [...candidates].filter((r) => !needed.has(r.uuid));
  return doomed.sort((a, b) => depth(b, byUuid) - depth(a, byUuid));
}

/** How many origins stand below an image. */
function depth(r: ImageRecord, byUuid: Map<string, ImageRecord>): number {
  let n = 0;
  for (let o = r.facts.origin; o && n < 1000; o = byUuid.get(o)?.facts.origin) n++;
  return n;
}

/** Deletes what planPrune chose, in its order. */
export async function prune(writer: ImageWriter, plan: ImageRecord[], provenance: Provenance): Promise<void> {
  for (const r of plan) await writer.remove(r.uuid, provenance);
}
