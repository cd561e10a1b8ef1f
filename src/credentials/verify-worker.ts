/* One verify worker: answers each { id, password, stored } with { id, ok }. */
import { parentPort } from 'node:worker_threads';
import { verifyPasswordSync } from './scrypt.js';

parentPort!.on('message', (job: { id: number; password: string; stored: string }) => {
  parentPort!.postMessage({ id: job.id, ok: verifyPasswordSync(job.password, job.stored) });
});
