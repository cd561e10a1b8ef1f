/*
 * A big JSON array written out a few hundred elements at a time, in pieces
 * of about a megabyte: the bytes are those JSON.stringify gives for the
 * whole value, but the whole never exists as one string. At 100,000 images
 * a listing as one string is some 50 MB, and making it is what sets the
 * server's peak memory.
 */

const PIECE_CHARS = 1 << 20;
/**
 * Elements serialised per JSON.stringify call: one call per element costs
 * a fifth more in all (a third more on a cold start, the first listing).
 */
const BATCH = 500;

/** `head`, the elements as JSON.stringify writes them in an array, comma-separated, then `tail`. */
export function jsonArrayPieces(items: Iterable<unknown>, head = '[', tail = ']'): Generator<string> {
  return jsonTextArrayPieces(batchTexts(items), head, tail);
}

/** Runs of up to BATCH elements, each as "[a,b]" without its brackets. */
function* batchTexts(items: Iterable<unknown>): Generator<string> {
  let batch: unknown[] = [];
  for (const item of items) {
    batch.push(item);
    if (batch.length < BATCH) continue;
    yield JSON.stringify(batch).slice(1, -1);
    batch = [];
  }
  // An element with no JSON form is null there, as in one big array.
  if (batch.length > 0) yield JSON.stringify(batch).slice(1, -1);
}

/** `head`, the JSON texts comma-separated, then `tail`: an array of values serialised beforehand. */
export function* jsonTextArrayPieces(texts: Iterable<string>, head = '[', tail = ']'): Generator<string> {
  let piece = head;
  let first = true;
  for (const text of texts) {
    piece += first ? text : `,${text}`;
    first = false;
    if (piece.length < PIECE_CHARS) continue;
    yield piece;
    piece = '';
  }
  yield piece + tail;
}
