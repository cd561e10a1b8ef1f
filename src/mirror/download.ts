/*
 * A mirror's download of one image file: the shared fetcher
 * (fetch/file.ts) into the store's partial download of that exact file,
 * which survives a restart and is never visible, so the next run resumes.
 * A file larger than the mirror may take is refused before a byte moves.
 */
import fs from 'node:fs/promises';
import { UpstreamError } from '../fetch/errors.js';
import { fetchFile, type FetchEvents, type Fetched } from '../fetch/file.js';
import type { ImageStore } from '../store/store.js';
import type { UpstreamImage } from './catalog.js';
import type { Upstream } from './upstream.js';

/**
 * One attempt at getting the whole, verified file. Throws an UpstreamError
 * (retryable or not); whatever arrived before a failure stays for the next
 * attempt, unless it is known to be wrong.
 */
export async function download(upstream: Upstream, store: ImageStore, image: UpstreamImage, maxBytes: number,
  events: FetchEvents = {}, signal?: AbortSignal): Promise<Fetched> {
  const file = await store.partialFile(image.uuid, image.sha1);
  if (image.size > maxBytes) {
    await fs.rm(file, { force: true });
    throw new UpstreamError(`image ${image.uuid}: its file of ${image.size} bytes is larger than max_upload_bytes (${maxBytes})`,
      { retryable: false, unhealthy: false });
  }
  const want = { file, size: image.size, sha1: image.sha1, ...(image.md5 ? { md5: image.md5 } : {}) };
  return fetchFile(upstream.client, image.fileUrl, want, events, signal);
}
