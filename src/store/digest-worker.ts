/*
 * One hash algorithm on a thread of its own, for the import's Digester:
 * each job's bytes arrive through a ring of shared memory (sent once, with
 * the job's first message), are hashed in order, and each piece is
 * acknowledged so that the sender may write over it.
 */
import { createHash, type Hash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';

export type DigestRequest =
  | { id: number; ring: SharedArrayBuffer }
  | { id: number; offset: number; length: number }
  | { id: number; end: true };

export type DigestReply =
  | { id: number; ack: number }
  | { id: number; digest: string };

const algorithm = (workerData as { algorithm: 'sha1' | 'md5' }).algorithm;
const encoding = algorithm === 'sha1' ? 'hex' : 'base64';
const jobs = new Map<number, { hash: Hash; ring?: Uint8Array }>();

parentPort!.on('message', (msg: DigestRequest) => {
  let job = jobs.get(msg.id);
  if (!job) jobs.set(msg.id, (job = { hash: createHash(algorithm) }));
  if ('ring' in msg) {
    job.ring = new Uint8Array(msg.ring);
  } else if ('end' in msg) {
    jobs.delete(msg.id);
    parentPort!.postMessage({ id: msg.id, digest: job.hash.digest(encoding) } satisfies DigestReply);
  } else {
    job.hash.update(job.ring!.subarray(msg.offset, msg.offset + msg.length));
    parentPort!.postMessage({ id: msg.id, ack: msg.length } satisfies DigestReply);
  }
});
