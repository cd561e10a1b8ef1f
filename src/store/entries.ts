/*
 * Each image's entry in an IMGAPI listing (its v2 view without channels),
 * serialised once per record and kept with it. A listing is then a join of
 * strings, not 100,000 views made and serialised again after every change
 * to the index; and the index snapshot carries the entries, so the first
 * listing after a restart is a join too.
 *
 * The text cannot go stale: the view is made of the manifest alone, and a
 * record whose manifest changes is replaced, never changed in place
 * (store.ts refresh(), loader.ts sameListing()).
 */
import { toImgapi } from '../manifest/views.js';
import type { ImageRecord } from './loader.js';

const entries = new WeakMap<ImageRecord, string>();

/** JSON.stringify(toImgapi(record.manifest)), made on first use. */
export function listingEntry(record: ImageRecord): string {
  let entry = entries.get(record);
  if (entry === undefined) {
    entry = JSON.stringify(toImgapi(record.manifest));
    entries.set(record, entry);
  }
  return entry;
}

/** The entry a snapshot kept for `record`. */
export function keepListingEntry(record: ImageRecord, entry: string): void {
  entries.set(record, entry);
}

/** An entry as toImgapi(manifest, channels) would have it: `channels` goes last. */
export function withChannels(entry: string, channels: readonly string[]): string {
  const open = entry === '{}' ? '{' : `${entry.slice(0, -1)},`;
  return `${open}"channels":${JSON.stringify(channels)}}`;
}
