/*
 * Where images removed lately sorted in listings, so a paging marker that
 * names one (a client paging while an image goes) still finds its place.
 * Bounded: the oldest removals are forgotten first.
 */
import type { ImageRecord } from './record.js';

const MAX_DEPARTED = 10_000;

export interface ListingPlace {
  publishedMs: number;
  public: boolean;
}

export class Departed {
  private readonly places = new Map<string, ListingPlace>();

  remember(record: ImageRecord): void {
    this.places.set(record.uuid, { publishedMs: record.publishedMs, public: record.isPublic });
    if (this.places.size > MAX_DEPARTED) this.places.delete(this.places.keys().next().value!);
  }

  get(uuid: string): ListingPlace | undefined {
    return this.places.get(uuid);
  }
}
