/*
 * What the channel tests share: two channels ("release", the default, and
 * "dev"), a writable server with them, and a publish into a channel.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { ExecutionContext } from 'ava';
import { sha1 } from '../helpers/images.js';
import { call, jsonBody, minimalManifest, writableServer } from '../publish/kit.js';

export const CHANNELS = [
  { name: 'release', description: 'tested images', default: true },
  { name: 'dev', description: 'fresh builds' },
];

export const channelServer = (t: ExecutionContext) => writableServer(t, { config: { channels: CHANNELS } });

/** A JSON body as IMGAPI version 2 clients send it: the answer shows `channels`. */
export const v2Json = (value: unknown) => ({ body: JSON.stringify(value), headers: { 'content-type': 'application/json', 'accept-version': '~2' } });

/** AdminImportImage, AddImageFile and ActivateImage, each with `query` (e.g. "channel=dev"). */
export async function publishTo(base: string, query: string, bytes = gzipSync(randomBytes(2048))): Promise<{ uuid: string; bytes: Buffer }> {
  const manifest = minimalManifest({ name: `chan-${randomUUID().slice(0, 8)}` });
  const uuid = String(manifest.uuid);
  const q = query ? `&${query}` : '';
  const steps: Array<[string, string, object]> = [
    ['POST', `/images/${uuid}?action=import${q}`, jsonBody(manifest)],
    ['PUT', `/images/${uuid}/file?compression=gzip&sha1=${sha1(bytes)}${q}`, { body: bytes }],
    ['POST', `/images/${uuid}?action=activate${q}`, {}],
  ];
  for (const [method, target, opts] of steps) {
    const res = await call(base, method, target, opts);
    if (res.status !== 200) throw new Error(`${method} ${target}: ${res.status} ${res.body}`);
  }
  return { uuid, bytes };
}
