/*
 * The rolling sweep's pace, on an injected clock: each folder once per
 * period, in shares proportional to the time passed, 12 times slower where
 * inotify covers every folder, and one quick verifying pass on demand.
 */
import test from 'ava';
import { RollingSweep } from '../../src/store/sweep.js';

const folders = Array.from({ length: 100 }, (_, i) => `f${i}`);

function clocked(periodMs: number) {
  let now = 0;
  const sweep = new RollingSweep(periodMs, () => now);
  return { sweep, tick: (ms: number) => (now += ms) };
}

test('each folder once per period, a share at each look', (t) => {
  const { sweep, tick } = clocked(100_000);
  const seen: string[] = [];
  for (let i = 0; i < 100; i++) {
    tick(1000);
    const due = sweep.slice(folders.length, () => [...folders], false);
    t.is(due.length, 1, `look ${i}: one folder a second`);
    seen.push(...due);
  }
  t.deepEqual(seen, folders, 'every folder once, in order');
});

test('where inotify watches every folder the sweep goes 12 times slower', (t) => {
  const { sweep, tick } = clocked(100_000);
  tick(12_000);
  t.is(sweep.slice(folders.length, () => [...folders], true).length, 1);
  tick(12_000);
  t.is(sweep.slice(folders.length, () => [...folders], false).length, 12);
});

test('a verifying pass checks every folder within 30 s, then the usual pace resumes', (t) => {
  const { sweep, tick } = clocked(300_000);
  sweep.verifyAll();
  let checked = 0;
  for (let s = 0; s < 30; s++) {
    tick(1000);
    checked += sweep.slice(folders.length, () => [...folders], false).length;
  }
  t.is(checked, 100);
  tick(3000);
  t.is(sweep.slice(folders.length, () => [...folders], false).length, 1, 'back to one folder per 3 s');
});
