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
import { keepListingEntry, listingEntry } from './entries.js';
import { jsonArrayPieces } from './json-pieces.js';
import type { Layout } from './layout.js';
import type { ImageRecord, StoredFile } from './loader.js';

/**
 * 3: the records as JSON on the first line, ASCII only (every other
 * character escaped, so that it is read as latin1 without decoding UTF-8:
 * a tenth of a second at 100,000 images); then each record's listing entry
 * (entries.ts) on a line of its own, in the same order and as UTF-8, the
 * very text a listing sends. JSON.stringify never writes a raw newline.
 * A snapshot of format 1 or 2 is ignored.
 */
const FORMAT = 3;
const NEWLINE = 0x0a;
const PIECE_CHARS = 1 << 20;

interface Snapshot {
  format: number;
  version: string;
  root: string;
  records: (Omit<ImageRecord, 'files'> & { files: (Omit<ImageRecord['files'][number], 'mtime'>)[] })[];
}

/** The cached records, or null when there is no usable snapshot. */
export function readIndexCache(layout: Layout): ImageRecord[] | null {
  let snapshot: Snapshot;
  let text: Buffer;
  let firstLineEnd: number;
  try {
    text = fs.readFileSync(layout.indexSnapshotPath());
    firstLineEnd = text.indexOf(NEWLINE);
    snapshot = JSON.parse(text.toString('latin1', 0, firstLineEnd)) as Snapshot;
  } catch {
    return null;
  }
  if (snapshot.format !== FORMAT || snapshot.version !== VERSION || snapshot.root !== layout.root) return null;
  // Completed in place: a copy of every record would double what the collector has to move at start.
  // Rounded as fs.Stats rounds it (a Date truncates), so Last-Modified is the same after a restart.
  for (const r of snapshot.records) for (const f of r.files) (f as StoredFile).mtime = new Date(Math.round(f.mtimeMs));
  const records = snapshot.records as ImageRecord[];
  return keepEntries(text, firstLineEnd + 1, records) ? records : null;
}

/** Gives each record its entry from the lines after the first; false unless there is exactly one line per record. */
function keepEntries(text: Buffer, start: number, records: readonly ImageRecord[]): boolean {
  let at = start;
  for (const record of records) {
    const end = text.indexOf(NEWLINE, at);
    if (end === -1) return false;
    keepListingEntry(record, text.toString('utf8', at, end));
    at = end + 1;
  }
  return at === text.length;
}

export async function writeIndexCache(layout: Layout, records: readonly ImageRecord[]): Promise<void> {
  await writeFileAtomic(layout.indexSnapshotPath(), snapshotPieces(layout, records), layout.stagingRoot());
}

/** The file, a piece at a time: the first line is asciiOnly(JSON.stringify(snapshot)). */
function* snapshotPieces(layout: Layout, records: readonly ImageRecord[]): Generator<string> {
  const head = `{"format":${FORMAT},"version":${JSON.stringify(VERSION)},"root":${JSON.stringify(layout.root)},"records":[`;
  for (const piece of jsonArrayPieces(stored(records), head, ']}\n')) yield asciiOnly(piece);
  let piece = '';
  for (const record of records) {
    piece += `${listingEntry(record)}\n`;
    if (piece.length >= PIECE_CHARS) {
      yield piece;
      piece = '';
    }
  }
  yield piece;
}

function* stored(records: readonly ImageRecord[]): Generator<Snapshot['records'][number]> {
  for (const r of records) yield { ...r, files: r.files.map(({ mtime: _mtime, ...f }) => f) };
}

/** JSON text with every character beyond ASCII escaped (a pair of surrogates as two escapes, which JSON.parse joins). */
function asciiOnly(json: string): string {
  return json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
