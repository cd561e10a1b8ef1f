/*
 * A snapshot of the index, so a restart need not re-read every folder
 * before it can answer: a server with 10,000 images would otherwise spend
 * most of its start-up in open/read/stat. The snapshot is only a head
 * start: each entry's folder stamp is compared at load (for a server, just
 * after it starts serving), and a verifying sweep in the first half
 * minute checks manifests and files as always.
 * Written by the server (atomically; when is snapshot-schedule.ts'
 * business), read only by a server of the same version.
 */
import fs from 'node:fs';
import { VERSION } from '../version.js';
import { writeFileAtomic } from './atomic.js';
import { jsonArrayPieces } from './json-pieces.js';
import type { Layout } from './layout.js';
import type { ImageRecord, StoredFile } from './loader.js';

/**
 * 2: ASCII only, every other character escaped, so that it is read as
 * latin1 without decoding UTF-8 (a tenth of a second at 100,000 images).
 * A snapshot of format 1 is ignored.
 */
const FORMAT = 2;

interface Snapshot {
  format: number;
  version: string;
  root: string;
  records: (Omit<ImageRecord, 'files'> & { files: (Omit<ImageRecord['files'][number], 'mtime'>)[] })[];
}

/** The cached records, or null when there is no usable snapshot. */
export function readIndexCache(layout: Layout): ImageRecord[] | null {
  let snapshot: Snapshot;
  try {
    snapshot = JSON.parse(fs.readFileSync(layout.indexSnapshotPath(), 'latin1')) as Snapshot;
  } catch {
    return null;
  }
  if (snapshot.format !== FORMAT || snapshot.version !== VERSION || snapshot.root !== layout.root) return null;
  // Completed in place: a copy of every record would double what the collector has to move at start.
  // Rounded as fs.Stats rounds it (a Date truncates), so Last-Modified is the same after a restart.
  for (const r of snapshot.records) for (const f of r.files) (f as StoredFile).mtime = new Date(Math.round(f.mtimeMs));
  return snapshot.records as ImageRecord[];
}

export async function writeIndexCache(layout: Layout, records: readonly ImageRecord[]): Promise<void> {
  // The bytes of asciiOnly(JSON.stringify(snapshot)), written a piece at a time.
  const head = `{"format":${FORMAT},"version":${JSON.stringify(VERSION)},"root":${JSON.stringify(layout.root)},"records":[`;
  await writeFileAtomic(layout.indexSnapshotPath(), asciiPieces(jsonArrayPieces(stored(records), head, ']}')), layout.stagingRoot());
}

function* stored(records: readonly ImageRecord[]): Generator<Snapshot['records'][number]> {
  for (const r of records) yield { ...r, files: r.files.map(({ mtime: _mtime, ...f }) => f) };
}

function* asciiPieces(pieces: Iterable<string>): Generator<string> {
  for (const piece of pieces) yield asciiOnly(piece);
}

/** JSON text with every character beyond ASCII escaped (a pair of surrogates as two escapes, which JSON.parse joins). */
function asciiOnly(json: string): string {
  return json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
