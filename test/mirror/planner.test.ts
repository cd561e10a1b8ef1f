/*
 * The mirror's planner, table-driven and without a network: what an
 * upstream lists, the origins fetched so far and what serve_dir has or
 * deleted go in; the copies (origins first), the skips with their reasons,
 * the partials to drop and the origins still to fetch come out.
 */
import { createHash } from 'node:crypto';
import test from 'ava';
import { readUpstreamImage, type UpstreamImage } from '../../src/mirror/catalog.js';
import { MAX_CHAIN, plan, type FetchedOrigin, type PlanOptions } from '../../src/mirror/planner.js';
import { Upstream } from '../../src/mirror/upstream.js';

const upstream = new Upstream({ url: 'http://upstream.invalid', type: 'imgapi' });
test.after.always(() => upstream.close());

/** A uuid from a short name, so the table reads by names. */
function uuidOf(name: string): string {
  const h = createHash('sha1').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

let day = 0;

function image(name: string, fields: Record<string, unknown> = {}): UpstreamImage {
  day++;
  const { origin, ...rest } = fields;
  const parsed = readUpstreamImage(upstream, {
    v: 2, uuid: uuidOf(name), owner: '930896af-bf8c-48d4-885c-6573a94b1853', name, version: '1.0.0', state: 'active',
    disabled: false, public: true, type: 'zone-dataset', os: 'smartos', published_at: new Date(Date.UTC(2020, 0, day)).toISOString(),
    files: [{ sha1: 'a'.repeat(40), size: 1000, compression: 'gzip' }],
    ...(typeof origin === 'string' ? { origin: uuidOf(origin) } : {}),
    ...rest,
  });
  if ('rejected' in parsed) throw new Error(parsed.message);
  return parsed;
}

const nameOf = (uuid: string, images: UpstreamImage[]) => images.find((i) => i.uuid === uuid)?.name ?? uuid;

interface Case {
  listed: UpstreamImage[];
  /** Origins fetched on their own: the image, or why it is missing. */
  fetched?: (UpstreamImage | [string, string])[];
  here?: string[];
  /** Here, but not in the channel the run's copies land in. */
  outside?: string[];
  deleted?: string[];
  options?: Partial<PlanOptions>;
  copies?: string[];
  skips?: string[];
  channelAdds?: string[];
  fetch?: string[];
  drop?: string[];
}

const base = image('base');
const mid = image('mid', { origin: 'base', state: 'disabled', disabled: true });
const app = image('app', { origin: 'mid' });
const other = image('other', { os: 'linux' });
const chain = Array.from({ length: MAX_CHAIN + 1 }, (_, i) => image(`link${i}`, i > 0 ? { origin: `link${i - 1}` } : {}));

const CASES: [string, Case][] = [
  ['copies what is not here, oldest first', { listed: [other, base], copies: ['base:selected', 'other:selected'] }],
  ['filters pick, and only active images are picked', {
    listed: [base, mid, other], options: { filters: { os: ['smartos'] } }, copies: ['base:selected'],
  }],
  ['an image here or deleted here is not copied', {
    listed: [base, other], here: ['base'], deleted: ['other'], copies: [], skips: ['base:present', 'other:deleted'],
  }],
  ['an origin chain comes first, whatever its state', {
    listed: [app, mid, base], options: { filters: { name: ['app'] } }, copies: ['base:origin', 'mid:origin', 'app:selected'],
  }],
  ['an origin not listed is asked for, and nothing is copied meanwhile', { listed: [app, base], fetch: ['mid'], copies: [] }],
  ['an origin fetched completes the chain', {
    listed: [app], fetched: [mid, base], copies: ['base:origin', 'mid:origin', 'app:selected'],
  }],
  ['the chain stops at an origin here', { listed: [app], fetched: [mid], here: ['base'], copies: ['mid:origin', 'app:selected'] }],
  ['an origin missing upstream fails the image only', {
    listed: [app, other], fetched: [['mid', 'does not exist upstream']], copies: ['other:selected'],
    skips: [`app:failed:its origin ${uuidOf('mid')} does not exist upstream`],
  }],
  ['an origin deleted here fails the image', {
    listed: [app, mid], deleted: ['base'], copies: [], skips: [`app:failed:its origin ${uuidOf('base')} was deleted here`],
  }],
  ['a loop fails the image', {
    listed: [image('loop-a', { origin: 'loop-b' }), image('loop-b', { origin: 'loop-a' })], options: { filters: { name: ['loop-a'] } },
    skips: [`loop-a:failed:its origin chain loops at ${uuidOf('loop-a')}`], copies: [],
  }],
  ['a chain longer than sdc-imgapi allows fails the image', {
    listed: chain, options: { filters: { name: [`link${MAX_CHAIN}`] } }, copies: [],
    skips: [`link${MAX_CHAIN}:failed:its origin chain is longer than ${MAX_CHAIN}`],
  }],
  ['a file over max_upload_bytes fails the image, and its partial is dropped', {
    listed: [base, mid, app], options: { maxFileBytes: 999, filters: { name: ['base'] } }, copies: [], drop: ['base'],
    skips: ['base:failed:manifest: its file of 1000 bytes is larger than max_upload_bytes (999)'],
  }],
  ['an origin over max_upload_bytes fails the image built on it', {
    listed: [app, image('big', { files: [{ sha1: 'b'.repeat(40), size: 5000, compression: 'gzip' }] }),
      image('small', { origin: 'big', files: [{ sha1: 'c'.repeat(40), size: 10, compression: 'gzip' }] })],
    fetched: [mid, base], options: { maxFileBytes: 1000, filters: { name: ['small'] } }, copies: [], drop: ['big'],
    skips: [`small:failed:origin ${uuidOf('big')}: its file of 5000 bytes is larger than max_upload_bytes (1000)`],
  }],
  ['a manifest the publish rules refuse fails the image', {
    listed: [image('<b>bold</b>'), other], copies: ['other:selected'], skips: ['<b>bold</b>:failed:manifest: name'],
  }],
  ['an image here outside the run\'s channel joins it; one here in it, or an origin, does not', {
    listed: [app, other], here: ['app', 'other', 'mid'], outside: ['app', 'mid'],
    copies: [], skips: ['other:present'], channelAdds: ['app'],
  }],
  ['an origin picked in its own right is copied as picked', {
    listed: [image('child', { origin: 'parent' }), image('parent')], copies: ['parent:selected', 'child:selected'],
  }],
];

for (const [name, c] of CASES) {
  test(`plan: ${name}`, (t) => {
    const origins = new Map<string, FetchedOrigin>((c.fetched ?? []).map((f) =>
      (Array.isArray(f) ? [uuidOf(f[0]), { missing: f[1] }] : [f.uuid, f])));
    const here = new Set((c.here ?? []).map(uuidOf));
    const deleted = new Set((c.deleted ?? []).map(uuidOf));
    const outside = new Set((c.outside ?? []).map(uuidOf));
    const all = [...c.listed, ...(c.fetched ?? []).filter((f): f is UpstreamImage => !Array.isArray(f))];
    const result = plan(c.listed, origins, { has: (u) => here.has(u), deleted: (u) => deleted.has(u), outsideChannel: (u) => outside.has(u) },
      { filters: {}, maxFileBytes: Number.MAX_SAFE_INTEGER, ...c.options });
    t.deepEqual(result.copies.map((e) => `${e.image.name}:${e.role}`), c.copies ?? [], 'copies');
    const skips = result.skips.map((s) => `${s.image.name}:${s.outcome}${s.error ? `:${s.error}` : ''}`);
    t.is(skips.length, (c.skips ?? []).length, `skips: ${JSON.stringify(skips)}`);
    for (const [i, want] of (c.skips ?? []).entries()) t.true(skips[i]!.startsWith(want), `${skips[i]} starts with ${want}`);
    t.deepEqual(result.channelAdds.map((i) => i.name), c.channelAdds ?? [], 'channel adds');
    t.deepEqual(result.fetch.map((u) => nameOf(u, [mid, base])), c.fetch ?? [], 'origins to fetch');
    t.deepEqual(result.dropPartials.map((i) => nameOf(i.uuid, all)), c.drop ?? [], 'partials to drop');
    for (const entry of result.copies) {
      for (const child of entry.originOf) t.is(result.copies.find((e) => e.image.uuid === child)?.image.origin, entry.image.uuid);
    }
  });
}
