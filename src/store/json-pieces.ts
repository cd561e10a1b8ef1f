/*
 * A big JSON array written out one element at a time, in pieces of about
 * a megabyte: the bytes are those JSON.stringify gives for the whole
 * value, but the whole never exists as one string. At 100,000 images one
 * string of the index snapshot or of a listing is some 100 MB, and making
 * it is what sets the server's peak memory.
 */

const PIECE_CHARS = 1 << 20;

/** `head`, the elements as JSON.stringify writes them in an array, comma-separated, then `tail`. */
export function* jsonArrayPieces(items: Iterable<unknown>, head = '[', tail = ']'): Generator<string> {
  let piece = head;
  let first = true;
  for (const item of items) {
    if (!first) piece += ',';
    // As JSON.stringify writes an array element that has no JSON form.
    piece += JSON.stringify(item) ?? 'null';
    first = false;
    if (piece.length >= PIECE_CHARS) {
      yield piece;
      piece = '';
    }
  }
  yield piece + tail;
}
