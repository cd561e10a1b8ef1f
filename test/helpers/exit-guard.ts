/*
 * Loaded into every test worker (ava.config.js `require`).
 *
 * ava waits for a worker process to exit on its own once its tests are
 * done. A handle a test forgot (a server, a child process, a thread) keeps
 * the worker alive, and ava's inactivity timeout does not always fire after
 * a test that raised its own t.timeout(): the whole run then hangs until CI
 * kills it, with nothing that names the file. So a worker that is still
 * alive a while after its last test says what holds it, and exits with a
 * failure, which ava reports under the file's name.
 */
import { registerCompletionHandler } from 'ava';

const GRACE_MS = 20_000;

/** What a handle is, in words that point at the test that made it. */
function describe(handle: unknown): string {
  const h = handle as Record<string, unknown> & { constructor?: { name?: string } };
  const kind = h.constructor?.name ?? typeof handle;
  if (Array.isArray(h.spawnargs)) return `${kind} pid ${String(h.pid)}: ${(h.spawnargs as string[]).join(' ').slice(0, 200)}`;
  if (typeof h.address === 'function') {
    try {
      const address = JSON.stringify((h.address as () => unknown).call(handle));
      return address === '{}' ? kind : `${kind} ${address}`;
    } catch {
      return kind;
    }
  }
  if (typeof h.threadId === 'number') return `${kind} thread ${h.threadId}`;
  return kind;
}

registerCompletionHandler(() => {
  const timer = setTimeout(() => {
    const getHandles = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles;
    const handles = getHandles ? getHandles.call(process).map(describe) : [];
    process.stderr.write(
      `exit-guard: this test file's worker was still running ${GRACE_MS / 1000} s after its last test, held by: ` +
        `${[...handles, ...process.getActiveResourcesInfo()].join('; ')}\n`,
    );
    process.exit(1);
  }, GRACE_MS);
  timer.unref();
});
