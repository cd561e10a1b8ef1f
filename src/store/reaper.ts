/*
 * Unactivated images are kept across restarts (a publish may resume), but
 * one abandoned for longer than the configured time is removed, unless
 * another image names it as origin. It was never active, so it leaves no
 * tombstone: its uuid may be published again.
 */
import fs from 'node:fs/promises';
import type { Logger } from '../log.js';
import { takesFiles } from '../manifest/states.js';
import type { ImageStore } from './store.js';
import type { ImageWriter } from './writer.js';

/** When the image folder last changed: every write rewrites manifest.json or server.json. */
async function lastTouched(store: ImageStore, uuid: string): Promise<number> {
  const times = await Promise.all([store.layout.manifestPath(uuid), store.layout.sidecarPath(uuid)]
    .map((p) => fs.stat(p).then((st) => st.mtimeMs, () => 0)));
  return Math.max(...times);
}

export async function reapUnactivated(store: ImageStore, writer: ImageWriter, maxAgeMs: number, log: Logger): Promise<string[]> {
  const reaped: string[] = [];
  const cutoff = Date.now() - maxAgeMs;
  for (const record of store.list()) {
    if (!takesFiles(record.state)) continue;
    if (store.dependents(record.uuid).length > 0) continue;
    if ((await lastTouched(store, record.uuid)) > cutoff) continue;
    await writer.remove(record.uuid, { via: 'reaper', by: 'reaper' });
    log.info({ uuid: record.uuid, name: record.facts.name, version: record.facts.version },
      'removed an unactivated image abandoned for too long');
    reaped.push(record.uuid);
  }
  return reaped;
}
