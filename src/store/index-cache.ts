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
import { STATES, type ImageState } from '../manifest/types.js';
import { VERSION } from '../version.js';
import { writeFileAtomic } from './atomic.js';
import type { Layout } from './layout.js';
import { ImageRecord } from './record.js';

/**
 * 4: a JSON head line, then a line per record of tab-separated fields
 * (JSON escapes every tab and newline inside its strings): uuid,
 * published ms, public (1 or 0), state, stamp, then the detail, the
 * facts, the manifest and the listing entry as JSON, the entry "=" when it
 * is the manifest's own text. Nothing is parsed per record at start but
 * the line itself: the rest is parsed when first used. ASCII only, every
 * other character escaped, so that it is read as latin1 without decoding
 * UTF-8. A snapshot of another format is ignored.
 */
const FORMAT = 4;
const SAME = '=';

interface Head {
  format: number;
  version: string;
  root: string;
}

/** The cached records, or null when there is no usable snapshot. */
export function readIndexCache(layout: Layout): ImageRecord[] | null {
  let lines: string[];
  let head: Head;
  try {
    lines = fs.readFileSync(layout.indexSnapshotPath(), 'latin1').split('\n');
    head = JSON.parse(lines[0]!) as Head;
  } catch {
    return null;
  }
  if (head.format !== FORMAT || head.version !== VERSION || head.root !== layout.root) return null;
  const records: ImageRecord[] = [];
  for (let i = 1; i < lines.length; i++) {
    const record = recordOf(lines[i]!);
    if (!record) return null;
    records.push(record);
  }
  return records;
}

function recordOf(line: string): ImageRecord | undefined {
  const [uuid, published, pub, state, stamp, detail, facts, manifest, entry, ...rest] = line.split('\t');
  const publishedMs = Number(published);
  if (entry === undefined || rest.length > 0 || !(STATES as readonly string[]).includes(state!) || !Number.isFinite(publishedMs)) {
    return undefined;
  }
  const manifestText = unescaped(manifest!);
  return ImageRecord.fromParts({
    uuid: uuid!, publishedMs, isPublic: pub === '1', state: state as ImageState, stamp: stamp!,
    detail: detail!, facts: facts!, manifest: manifestText, entry: entry === SAME ? manifestText : unescaped(entry),
  });
}

/**
 * JSON text as JSON.stringify gave it before the snapshot escaped it: the
 * only escapes JSON.stringify writes as \u are of control characters and
 * lone surrogates, so a text without one is already that.
 */
function unescaped(json: string): string {
  return json.includes('\\u') ? JSON.stringify(JSON.parse(json)) : json;
}

export async function writeIndexCache(layout: Layout, records: readonly ImageRecord[]): Promise<void> {
  const head: Head = { format: FORMAT, version: VERSION, root: layout.root };
  await writeFileAtomic(layout.indexSnapshotPath(), linePieces(JSON.stringify(head), records), layout.stagingRoot());
}

/** Pieces of about a megabyte: at 100,000 images the snapshot is some 100 MB, which should never be one string. */
function* linePieces(head: string, records: readonly ImageRecord[]): Generator<string> {
  let piece = asciiOnly(head);
  for (const r of records) {
    const fields = [r.uuid, r.publishedMs, r.isPublic ? 1 : 0, r.state, r.stamp, r.detailText, r.factsText, r.manifestText,
      r.entry === r.manifestText ? SAME : r.entry];
    piece += `\n${asciiOnly(fields.join('\t'))}`;
    if (piece.length < 1 << 20) continue;
    yield piece;
    piece = '';
  }
  yield piece;
}

/** JSON text with every character beyond ASCII escaped (a pair of surrogates as two escapes, which JSON.parse joins). */
function asciiOnly(json: string): string {
  return json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
