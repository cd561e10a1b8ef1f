/*
 * Splits a JSON array arriving in chunks into its elements' bytes, one
 * element at a time, without ever holding more than one element (and at
 * most `maxEntryBytes` of it). An upstream listing can be any size and
 * anything; whatever it is, a mirror parses it in bounded pieces, so one
 * bad or huge element costs that element only.
 *
 * The splitter only follows the structure (strings with their escapes,
 * nesting depth, the commas between elements); each element's bytes are
 * judged by JSON.parse later. UTF-8 needs no care: no byte of a multi-byte
 * character is an ASCII one.
 */

export type ArrayEntry = { bytes: Buffer } | { oversize: number };

export class NotAnArray extends Error {}
export class TrailingGarbage extends Error {}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const ARRAY_END = 0x5d;
/** What each byte is to the structure, other bytes being 0 (a table: the splitter looks at every byte of a listing). */
const SPACE = 1;
const OPENS = 2;
const CLOSES = 3;
const KIND = new Uint8Array(256);
for (const c of [0x20, 0x09, 0x0a, 0x0d]) KIND[c] = SPACE;
for (const c of [0x5b, 0x7b]) KIND[c] = OPENS;
for (const c of [0x5d, 0x7d]) KIND[c] = CLOSES;

type Phase = 'before' | 'inside' | 'after';

export class JsonArraySplitter {
  private phase: Phase = 'before';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private parts: Buffer[] = [];
  private size = 0;
  /** Bytes of the current element, kept or not. */
  private seen = 0;
  private hasValue = false;
  private elements = 0;

  constructor(private readonly maxEntryBytes: number) {}

  get done(): boolean {
    return this.phase === 'after';
  }

  /** The elements that end in this chunk (a chunk may end inside one: it is kept for the next). */
  *feed(chunk: Buffer): Generator<ArrayEntry> {
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (this.phase === 'before') {
        if (KIND[c] === SPACE) continue;
        if (c !== 0x5b) throw new NotAnArray('not a JSON array');
        this.phase = 'inside';
        start = i + 1;
        continue;
      }
      if (this.phase === 'after') {
        if (KIND[c] !== SPACE) throw new TrailingGarbage('bytes after the end of the array');
        continue;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === BACKSLASH) this.escaped = true;
        else if (c === QUOTE) this.inString = false;
        continue;
      }
      const kind = KIND[c];
      if (c === QUOTE) {
        this.inString = true;
        this.hasValue = true;
      } else if (kind === OPENS) {
        this.depth++;
        this.hasValue = true;
      } else if (this.depth > 0 && kind === CLOSES) {
        this.depth--;
      } else if (this.depth === 0 && (c === COMMA || c === ARRAY_END)) {
        this.keep(chunk, start, i);
        start = i + 1;
        const entry = this.take(c === ARRAY_END);
        if (entry) yield entry;
        if (c === ARRAY_END) this.phase = 'after';
      } else if (kind !== SPACE) {
        this.hasValue = true;
      }
    }
    if (this.phase === 'inside') this.keep(chunk, start, chunk.length);
  }

  private keep(chunk: Buffer, from: number, to: number): void {
    if (to <= from) return;
    this.seen += to - from;
    if (this.seen > this.maxEntryBytes) {
      this.parts = [];
      this.size = 0;
      return;
    }
    this.parts.push(chunk.subarray(from, to));
    this.size += to - from;
  }

  /** The element just ended; none for the empty array's "[]". */
  private take(last: boolean): ArrayEntry | undefined {
    const entry: ArrayEntry | undefined = this.seen > this.maxEntryBytes ? { oversize: this.seen }
      : last && !this.hasValue && this.elements === 0 ? undefined
        : { bytes: this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size) };
    if (entry) this.elements++;
    this.parts = [];
    this.size = 0;
    this.seen = 0;
    this.hasValue = false;
    return entry;
  }
}
