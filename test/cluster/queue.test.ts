/*
 * The pull queue's heap (src/cluster/queue.ts): whatever order images are
 * pushed in, they come out by key, element by element, then by uuid.
 */
import { randomUUID } from 'node:crypto';
import test from 'ava';
import { PriorityQueue, type QueueKey } from '../../src/cluster/queue.js';

test('items come out in key order, whatever order they went in', (t) => {
  const queue = new PriorityQueue<QueueKey>();
  const keys: QueueKey[] = [];
  for (let i = 0; i < 500; i++) {
    // Few distinct values, so ties on the first elements are common.
    keys.push([i % 2, -Math.floor(Math.random() * 20), randomUUID()]);
  }
  for (const key of keys) queue.push(key, key);
  t.is(queue.size, keys.length);
  const out: QueueKey[] = [];
  for (let item = queue.pop(); item; item = queue.pop()) out.push(item);
  const expected = [...keys].sort((a, b) => a[0] - b[0] || a[1] - b[1] || (a[2] < b[2] ? -1 : 1));
  t.deepEqual(out, expected);
  t.is(queue.size, 0);
});

test('an empty queue gives nothing, and takes items again', (t) => {
  const queue = new PriorityQueue<string>();
  t.is(queue.pop(), undefined);
  queue.push([1, 0, 'b'], 'built on an origin');
  queue.push([0, -5, 'a'], 'newest base');
  queue.push([0, -1, 'c'], 'older base');
  t.deepEqual([queue.pop(), queue.pop(), queue.pop(), queue.pop()], ['newest base', 'older base', 'built on an origin', undefined]);
});
