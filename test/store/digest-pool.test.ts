/*
 * The hashing threads shared by every import: right digests, and they never
 * keep a process alive once nothing is owed, even when an import is
 * dropped half-way without its stream being ended or destroyed.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import test from 'ava';
import { Digester } from '../../src/store/hashing.js';

const hashingModule = fileURLToPath(new URL('../../src/store/hashing.js', import.meta.url));

test('a Digester gives the sha1 (hex) and md5 (base64) of what went through, over several ring lengths, in chunks of any size', async (t) => {
  const data = randomBytes(9 * 1024 * 1024 + 17);
  // Large chunks fill the ring at once; small ones (an HTTP body's) are told to the workers in batches.
  for (const chunk of [1_000_003, 65_536, 4093]) {
    const digester = new Digester(data.length);
    digester.resume();
    for (let at = 0; at < data.length; at += chunk) digester.write(data.subarray(at, at + chunk));
    digester.end();
    await once(digester, 'end');
    t.deepEqual(digester.digest(), {
      size: data.length,
      sha1: createHash('sha1').update(data).digest('hex'),
      md5: createHash('md5').update(data).digest('base64'),
    }, `chunks of ${chunk} bytes`);
  }
});

/** Runs `body` as a module in a fresh node process and resolves with its exit code, or 'hung' after the deadline. */
async function exitOf(body: string, deadlineMs = 30_000): Promise<number | string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgsrv-digest-'));
  const script = path.join(dir, 'script.mjs');
  await fs.writeFile(script, body);
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'inherit', 'inherit'] });
  child.on('error', () => undefined);
  const timer = setTimeout(() => child.kill('SIGKILL'), deadlineMs);
  try {
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    return signal === 'SIGKILL' ? 'hung' : (code ?? String(signal));
  } finally {
    clearTimeout(timer);
    child.kill('SIGKILL');
    await fs.rm(dir, { recursive: true, force: true });
  }
}

test('an import dropped mid-stream, neither ended nor destroyed, does not keep the process alive', async (t) => {
  const body = `
    import { Digester } from ${JSON.stringify(pathToFileURL(hashingModule).href)};
    const d = new Digester(1e9);
    d.resume();
    await new Promise((resolve, reject) => d.write(Buffer.alloc(3 << 20, 7), (err) => (err ? reject(err) : resolve())));
    new Digester(1e9);
    process.exitCode = 3;
  `;
  t.is(await exitOf(body), 3, 'the process ends on its own once its code is done');
});
