/*
 * A binary min-heap: the pull queue. Each item's key is computed once, when
 * it is pushed, so taking the next pull costs log n comparisons of plain
 * numbers, however many images wait.
 */

/** Compared element by element, then by the string. */
export type QueueKey = readonly [number, number, string];

export class PriorityQueue<T> {
  private readonly heap: { key: QueueKey; item: T }[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(key: QueueKey, item: T): void {
    const heap = this.heap;
    heap.push({ key, item });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!less(heap[i]!.key, heap[parent]!.key)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  pop(): T | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (!top || !last || heap.length === 0) return top?.item;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < heap.length && less(heap[left]!.key, heap[least]!.key)) least = left;
      if (right < heap.length && less(heap[right]!.key, heap[least]!.key)) least = right;
      if (least === i) break;
      [heap[i], heap[least]] = [heap[least]!, heap[i]!];
      i = least;
    }
    return top.item;
  }
}

function less(a: QueueKey, b: QueueKey): boolean {
  if (a[0] !== b[0]) return a[0] < b[0];
  if (a[1] !== b[1]) return a[1] < b[1];
  return a[2] < b[2];
}
