/*
 * `node bench/scale.js [images] [idle seconds]` (default 10000, 60): the
 * scale phase of the bench (phases/scale.js) on its own, for a quick look
 * at one catalog size. Prints the rows; writes nothing else.
 */
import { forceCleanup } from './lib/cleanup.js';
import { table } from './lib/report.js';
import { assertBuilt } from './lib/server.js';
import { scalePhase } from './phases/scale.js';

try {
  assertBuilt();
  const { rows, setup } = await scalePhase({ images: Number(process.argv[2] ?? 10_000), idleSeconds: Number(process.argv[3] ?? 60) });
  process.stdout.write(`\n${table(rows)}\n\n${setup.join('\n')}\n`);
} catch (err) {
  forceCleanup();
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exitCode = 1;
}
