/*
 * Password checks on worker threads of their own. scrypt on libuv's pool
 * (crypto.scrypt) shares its four threads with every file read and write,
 * so a flood of wrong passwords used to stall downloads. Here at most
 * `size` checks run at once, each on its own thread, and at most
 * `queueMax` wait: beyond that a check is refused at once, so neither the
 * queue nor the wait grows with what clients send.
 */
import { Worker } from 'node:worker_threads';

interface Job {
  id: number;
  password: string;
  stored: string;
  resolve(ok: boolean): void;
  reject(err: Error): void;
}

export class VerifyPool {
  private readonly idle: Worker[] = [];
  private readonly running = new Map<Worker, Job>();
  private readonly queue: Job[] = [];
  private nextId = 0;

  constructor(private readonly size: number, private readonly queueMax: number) {}

  /** Whether a check asked for now would be refused. */
  get full(): boolean {
    return this.running.size >= this.size && this.queue.length >= this.queueMax;
  }

  /** Resolves whether `password` matches `stored`; rejects when the pool is full or a worker fails. */
  verify(password: string, stored: string): Promise<boolean> {
    if (this.full) return Promise.reject(new Error('password checks: queue full'));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, password, stored, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      const worker = this.idle.pop() ?? (this.running.size < this.size ? this.spawn() : undefined);
      if (!worker) return;
      const job = this.queue.shift()!;
      this.running.set(worker, job);
      worker.ref();
      worker.postMessage({ id: job.id, password: job.password, stored: job.stored });
    }
  }

  private spawn(): Worker {
    const worker = new Worker(new URL('./verify-worker.js', import.meta.url));
    worker.on('message', (msg: { id: number; ok: boolean }) => {
      const job = this.running.get(worker);
      this.running.delete(worker);
      // An idle worker must not keep the process alive.
      worker.unref();
      this.idle.push(worker);
      if (job?.id === msg.id) job.resolve(msg.ok);
      this.dispatch();
    });
    worker.on('error', (err) => this.lose(worker, err));
    worker.on('exit', (code) => this.lose(worker, new Error(`password check worker exited with code ${code}`)));
    return worker;
  }

  /** A worker that died: fail its check, forget it, and let the next check start a new one. */
  private lose(worker: Worker, err: Error): void {
    const job = this.running.get(worker);
    this.running.delete(worker);
    const i = this.idle.indexOf(worker);
    if (i >= 0) this.idle.splice(i, 1);
    job?.reject(err);
    this.dispatch();
  }
}
