/*
 * Tombstones: what is left of an activated image after it was deleted, so
 * that its uuid is never published again by accident (imgadm and peers
 * cache manifests by uuid). One small JSON file per uuid under
 * .deleted/; only the writer makes them, anyone in the store may ask.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { isObject } from '../manifest/types.js';
import { writeFileAtomic } from './atomic.js';
import type { Layout } from './layout.js';

export interface Tombstone {
  uuid: string;
  name?: string;
  version?: string;
  deleted_at?: string;
  by?: string;
}

export function hasTombstone(layout: Layout, uuid: string): boolean {
  return fs.existsSync(layout.tombstonePath(uuid));
}

/** Every uuid with a tombstone, in one read of the folder. */
export function listTombstones(layout: Layout): string[] {
  try {
    return fs.readdirSync(layout.tombstoneRoot()).filter((name) => !name.startsWith('.'));
  } catch {
    return [];
  }
}

/** The tombstone of `uuid`, or undefined when it has none; an unreadable one is still a tombstone. */
export function readTombstone(layout: Layout, uuid: string): Tombstone | undefined {
  let text: string;
  try {
    text = fs.readFileSync(layout.tombstonePath(uuid), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) ? { ...(value as unknown as Tombstone), uuid } : { uuid };
  } catch {
    return { uuid };
  }
}

export async function writeTombstone(layout: Layout, tombstone: Tombstone): Promise<void> {
  await fsp.mkdir(layout.tombstoneRoot(), { recursive: true });
  await writeFileAtomic(layout.tombstonePath(tombstone.uuid), `${JSON.stringify(tombstone)}\n`, layout.stagingRoot());
}
