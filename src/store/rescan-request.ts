/*
 * Both ends of `image-server rescan`: the command drops a request file in
 * serve_dir, and the server, whose quick check sees it among the folder's
 * names, removes it and sweeps every folder. The command learns its
 * request was taken when the file is gone.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Layout } from './layout.js';

/**
 * Asks the server running on serveDir for a full sweep. True if it took
 * the request within `waitMs`; otherwise the request is taken back.
 */
export async function requestRescan(serveDir: string, waitMs: number): Promise<boolean> {
  const file = new Layout(serveDir).rescanRequestPath();
  await fsp.writeFile(file, `${process.pid}\n`);
  const until = Date.now() + waitMs;
  while (Date.now() < until) {
    if (!fs.existsSync(file)) return true;
    await sleep(100);
  }
  await fsp.rm(file, { force: true });
  return false;
}

/** True if this process took a pending request (of two servers on one serve_dir, one does). */
export function takeRescanRequest(layout: Layout): boolean {
  try {
    fs.unlinkSync(layout.rescanRequestPath());
    return true;
  } catch {
    return false;
  }
}
