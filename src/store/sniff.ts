/*
 * Compression from the first bytes of a file or stream: gzip, bzip2 and xz
 * have magic numbers, a raw zfs send stream has none of them.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { Compression } from '../manifest/types.js';

export const SNIFF_BYTES = 6;
const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);

export function compressionOf(head: Buffer): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (head.subarray(0, 6).equals(XZ_MAGIC)) return 'xz';
  return 'none';
}

/** The compression a file's first bytes show (six bytes read; throws if the file cannot be read). */
export function compressionOfFile(file: string): Compression {
  const head = Buffer.alloc(SNIFF_BYTES);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, SNIFF_BYTES, 0);
  } finally {
    closeSync(fd);
  }
  return compressionOf(head);
}

/**
 * Reads just enough of `source` to tell its compression, and returns a
 * stream that still yields every byte from the first: `source` itself, the
 * bytes read put back, so that no second stream exists whose errors nobody
 * would listen to before the caller reads on.
 */
export async function sniffStream(source: Readable): Promise<{ compression: Compression; stream: Readable }> {
  const head: Buffer[] = [];
  let have = 0;
  let ended = true;
  for await (const chunk of source.iterator({ destroyOnReturn: false })) {
    head.push(chunk as Buffer);
    have += (chunk as Buffer).length;
    if (have >= SNIFF_BYTES) {
      ended = false;
      break;
    }
  }
  const first = Buffer.concat(head);
  if (ended) return { compression: compressionOf(first), stream: Readable.from(have > 0 ? [first] : [], { objectMode: false }) };
  source.unshift(first);
  return { compression: compressionOf(first), stream: source };
}
