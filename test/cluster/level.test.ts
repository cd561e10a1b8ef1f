/*
 * lag_seconds across restarts: the clock of when a server was last level
 * with the index, on a stand-in for the store's state files.
 */
import test from 'ava';
import { LevelClock } from '../../src/cluster/level.js';
import { createLogger } from '../../src/log.js';
import type { ImageStore } from '../../src/store/store.js';

const MIN = 60_000;

function stateFiles(initial?: string) {
  const files = new Map<string, string>(initial === undefined ? [] : [['cluster-level', initial]]);
  let writes = 0;
  const store = {
    readState: (name: string) => files.get(name),
    writeState: async (name: string, text: string) => {
      writes++;
      files.set(name, text);
    },
  } as unknown as ImageStore;
  return { store, files, writes: () => writes };
}

const log = createLogger('silent');

test('a new server is behind since it started, level is 0, and behind again counts from the last level pass', (t) => {
  const { store } = stateFiles();
  const clock = new LevelClock(store, log, 0);
  t.is(clock.lagSeconds(12_345), 12.3);
  clock.update(true, 20_000);
  t.is(clock.lagSeconds(25_000), 0);
  clock.update(true, 30_000);
  clock.update(false, 31_000);
  t.is(clock.lagSeconds(40_000), 10);
  clock.fellBehind();
  t.true(clock.lagSeconds() > 1000, 'still counted from the last level pass');
});

test('a restarted server is behind since it was last level, however long it was down', async (t) => {
  const { store, files } = stateFiles();
  const before = new LevelClock(store, log, 0);
  before.update(true, 1000);
  await before.close(5000);
  t.deepEqual(JSON.parse(files.get('cluster-level')!), { level_at: 5000 });
  const after = new LevelClock(store, log, 65_000);
  t.is(after.lagSeconds(65_000), 60, 'down for a minute: a minute behind at once');
  after.update(false, 70_000);
  t.is(after.lagSeconds(70_000), 65);
  after.update(true, 71_000);
  t.is(after.lagSeconds(72_000), 0);
});

test('a server stopped while behind stays behind since its last level moment', async (t) => {
  const { store } = stateFiles(JSON.stringify({ level_at: 1000 }));
  const clock = new LevelClock(store, log, 2000);
  clock.update(false, 3000);
  await clock.close(4000);
  t.is(new LevelClock(store, log, 10_000).lagSeconds(10_000), 9);
});

test('writes: on each change of level, and while level at most every 5 minutes', (t) => {
  const { store, writes } = stateFiles();
  const clock = new LevelClock(store, log, 0);
  clock.update(false, 1000);
  t.is(writes(), 0, 'behind as it was: nothing to write');
  clock.update(true, 2000);
  t.is(writes(), 1);
  for (let at = 3000; at < 2000 + 5 * MIN; at += 1000) clock.update(true, at);
  t.is(writes(), 1, 'level pass after level pass: no write within 5 minutes');
  clock.update(true, 2000 + 5 * MIN);
  t.is(writes(), 2);
  clock.update(false, 3000 + 5 * MIN);
  t.is(writes(), 3);
});

test('an unreadable or foreign file is ignored: behind since the start', (t) => {
  for (const text of ['not json', '{"level_at":"yesterday"}', '[]', 'null']) {
    t.is(new LevelClock(stateFiles(text).store, log, 1000).lagSeconds(3000), 2, text);
  }
});
