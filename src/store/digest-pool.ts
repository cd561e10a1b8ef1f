/*
 * SHA-1 and MD5 of an import, each on a worker thread of its own, in
 * parallel with each other and with the write to disk: one stream then
 * runs at the pace of the slower of MD5 and the disk, not of SHA-1 plus
 * MD5 on the main thread. Each chunk is copied once, into a ring of
 * shared memory that both workers read: a fixed amount of memory per
 * import, whatever the pace of the disk or the hashes. The two workers are
 * shared by every import of the process, started on first use, and keep
 * the process alive only while they owe an answer: an import dropped
 * without a word (its stream never ended nor was destroyed) never holds
 * the process open.
 */
import { Worker } from 'node:worker_threads';
import type { DigestReply, DigestRequest } from './digest-worker.js';

type Algorithm = 'sha1' | 'md5';

interface Job {
  acked: (bytes: number) => void;
  done: (digest: string) => void;
  failed: (err: Error) => void;
}

class HashThread {
  private worker: Worker | undefined;
  private readonly jobs = new Map<number, Job>();
  /** Messages sent that the worker has still to answer. */
  private owed = 0;

  constructor(private readonly algorithm: Algorithm) {}

  private start(): Worker {
    const worker = new Worker(new URL('./digest-worker.js', import.meta.url), { workerData: { algorithm: this.algorithm } });
    worker.on('message', (msg: DigestReply) => {
      if (--this.owed === 0) worker.unref();
      const job = this.jobs.get(msg.id);
      if (!job) return;
      if ('ack' in msg) job.acked(msg.ack);
      else {
        this.close(msg.id);
        job.done(msg.digest);
      }
    });
    // A dead worker fails the imports it was hashing; the next import starts a new one.
    const fail = (err: Error) => {
      this.worker = undefined;
      this.owed = 0;
      for (const job of this.jobs.values()) job.failed(err);
      this.jobs.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the ${this.algorithm} worker exited with ${code}`)));
    return worker;
  }

  open(id: number, job: Job): void {
    if (!this.worker) {
      this.worker = this.start();
      this.worker.unref();
    }
    this.jobs.set(id, job);
  }

  private close(id: number): void {
    this.jobs.delete(id);
  }

  send(msg: DigestRequest): void {
    if (!this.worker) return;
    // Every message but the ring's is answered: an ack or the digest.
    if (!('ring' in msg) && this.owed++ === 0) this.worker.ref();
    this.worker.postMessage(msg);
  }

  drop(id: number): void {
    this.send({ id, end: true });
    this.close(id);
  }
}

const threads = { sha1: new HashThread('sha1'), md5: new HashThread('md5') };
let nextId = 0;

const RING_BYTES = 4 * 1024 * 1024;
const BATCH_BYTES = 1024 * 1024;

/** Both digests of one byte stream, hashed off the main thread. */
export class ParallelHash {
  private readonly id = ++nextId;
  private ring: Uint8Array | undefined;
  /** Bytes written into the ring, and acknowledged by each worker, since the start. */
  private written = 0;
  /** Of those, the bytes the workers have been told about. */
  private sent = 0;
  private readonly acked = { sha1: 0, md5: 0 };
  private waiting: (() => void) | undefined;
  private failure: Error | undefined;
  private ended = false;
  private readonly results: Promise<[string, string]>;

  constructor() {
    const digestOf = (algorithm: Algorithm) => new Promise<string>((resolve, reject) => {
      threads[algorithm].open(this.id, {
        acked: (bytes) => {
          this.acked[algorithm] += bytes;
          this.waiting?.();
        },
        done: resolve,
        failed: (err) => {
          this.failure = err;
          this.waiting?.();
          reject(err);
        },
      });
    });
    this.results = Promise.all([digestOf('sha1'), digestOf('md5')]);
    // Read only by digest(); until then a worker's failure is also reported through update().
    this.results.catch(() => undefined);
  }

  private get free(): number {
    return RING_BYTES - (this.written - Math.min(this.acked.sha1, this.acked.md5));
  }

  /** Hands a chunk to both workers; resolves once it is in the ring (waiting for room if need be). */
  async update(chunk: Uint8Array): Promise<void> {
    if (!this.ring) {
      const shared = new SharedArrayBuffer(RING_BYTES);
      this.ring = new Uint8Array(shared);
      for (const algorithm of ['sha1', 'md5'] as const) threads[algorithm].send({ id: this.id, ring: shared });
    }
    for (let done = 0; done < chunk.length;) {
      if (this.free === 0) this.flush();
      while (this.free === 0 && !this.failure) {
        await new Promise<void>((resolve) => (this.waiting = resolve));
        this.waiting = undefined;
      }
      if (this.failure) throw this.failure;
      // One contiguous piece: up to the free room and up to the ring's end.
      const offset = this.written % RING_BYTES;
      const length = Math.min(chunk.length - done, this.free, RING_BYTES - offset);
      this.ring.set(chunk.subarray(done, done + length), offset);
      this.written += length;
      done += length;
      if (this.unsent >= BATCH_BYTES || offset + length === RING_BYTES) this.flush();
    }
  }

  /** Bytes in the ring that the workers have not been told about yet. */
  private get unsent(): number {
    return this.written - this.sent;
  }

  /**
   * Tells both workers about the bytes written since the last time. An HTTP
   * body comes in 64 KiB chunks; a message for each would cost more CPU
   * than the hashing, so they go by the MiB.
   */
  private flush(): void {
    const length = this.unsent;
    if (length === 0) return;
    const offset = this.sent % RING_BYTES;
    this.sent = this.written;
    for (const algorithm of ['sha1', 'md5'] as const) threads[algorithm].send({ id: this.id, offset, length });
  }

  /** sha1 (hex) and md5 (base64) of everything updated. */
  async digest(): Promise<{ sha1: string; md5: string }> {
    this.flush();
    this.ended = true;
    threads.sha1.send({ id: this.id, end: true });
    threads.md5.send({ id: this.id, end: true });
    const [sha1, md5] = await this.results;
    return { sha1, md5 };
  }

  /** Forgets the job (the import failed); the workers free its state. */
  abandon(): void {
    if (this.ended) return;
    this.ended = true;
    threads.sha1.drop(this.id);
    threads.md5.drop(this.id);
  }
}
