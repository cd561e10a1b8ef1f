/*
 * A deterministic generator of manifests for the cross-checks against the
 * real imgmanifest: valid starting points (fixtures and hand-made ones),
 * then 1-3 mutations (mostly one) each drawn with a seeded PRNG from value pools aimed
 * at every rule (wrong types, bad enums, lengths, characters, uuids,
 * dates, requirements, zvol-only fields, extra keys, ...), including the
 * JavaScript coercions imgmanifest relies on ("2", [uuid], {length: N}).
 */
export type Json = Record<string, unknown>;

/** mulberry32: small, seeded, good enough to spread mutations. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Rng = () => number;
export const pick = <T>(rng: Rng, list: readonly T[]): T => list[Math.floor(rng() * list.length)]!;

const UUID = '1f9b7958-289e-4ea3-8f88-5486a40d6823';
const OWNER = '930896af-bf8c-48d4-885c-6573a94b1853';
const SHA1 = '3dcf0d8695bf81a05a6272ccdc5048dd025acceb';
const FILE = { sha1: SHA1, size: 121737890, compression: 'gzip' };
const EMOJI = '\u{1F600}';

/** Values any field may meet. */
const ANY: unknown[] = [null, true, false, 0, 1, -1, 1.5, 1e21, '', 'x', 'true', 'false', '2', ' 7 ',
  '0x10', 'null', [], [1], ['x'], [null], [[]], {}, { a: 1 }, { length: 2000 }];
const BOOLEANISH: unknown[] = [true, false, 'true', 'false', 'yes', 'TRUE', 1, 0, null, [], [true]];
const UUIDS: unknown[] = [UUID, UUID.toUpperCase(), UUID.replace(/-/g, ''), `${UUID} `, [UUID], [[UUID]],
  [UUID, UUID], '00000000-0000-0000-0000-000000000000', 'booga', 5, null];
const URLS: unknown[] = ['http://imgapi.co', 'https://x.org/a?b#c', 'HTTP://X', ' http://x', '\thttps:',
  '\u00a0https://x', '\ufeffhttp://x', 'http:', 'ftp://x', 'x', '', '//x', 'javascript:x', 'httpx://y',
  `http://x/${'a'.repeat(1015)}`, `http://x/${'a'.repeat(1016)}`, 5, null, ['http://x'], {}];
const DATES: unknown[] = ['2012-11-02T22:46:45.992Z', '2012-11-02T22:46:45Z', '2012-11-02T22:46Z',
  '2012-11-02T22:46:45.123456789Z', '2012-11-02T22:46:45+00:00', 'x2012-11-02T22:46:45Z', '', 0,
  false, null, 5, true, ['2012-11-02T22:46:45Z'], [['2012-11-02T22:46:45Z']], ['bad'], {}];
const WORDS = (valid: string[]): unknown[] => [...valid, 'null', 'NULL', 'ZVOL', 'kvm', 5, null, true,
  [valid[0]], [[valid[1]]], [valid[0], valid[1]], {}];
const NAMES = (max: number): unknown[] => ['foo', 'a'.repeat(max), 'a'.repeat(max + 1),
  EMOJI.repeat(max / 2), EMOJI.repeat(max / 2 + 1), 'foo!', 'foo bar', 'foo+bar', 'f\u00f3o', 'a\nb',
  'a,b', '1.2.3-x_y/z', 1e21, -1e21, 1e-7, 5, -5, true, ['foo'], ['foo', 'bar'], [['foo']], [5],
  { length: max + 1 }, { length: `${max + 1}` }, { length: 3 }, {}, null];
const DRIVERS: unknown[] = ['virtio', 'ide', '', 0, null, false, true, 5, ['x'], {}];
const SIZES: unknown[] = [16384, '16384', '', 0, null, false, true, 1.5, -5, 'abc', ' 12 ', '0x10', [5],
  [1, 2], {}, 'Infinity', 1e21, ['7'], [true]];

const FILES: unknown[] = [[], [FILE], [FILE, FILE], [FILE, FILE, FILE], 'x', {}, null, [null], ['x'], [5],
  [[]], [{}], [{ sha1: '', size: 0, compression: '' }], [{ ...FILE, compression: 'lz4' }],
  [{ ...FILE, compression: ['gzip'] }], [{ ...FILE, compression: 'xz' }], [{ ...FILE, size: '12' }],
  [{ ...FILE, sha1: null }], [{ ...FILE, stor: 'local', dataset_guid: '123' }], [{ size: 1 }, { sha1: 'x' }]];

/** requirements: random objects made of these, or one of the odd shapes. */
const REQUIREMENT_VALUES: Record<string, unknown[]> = {
  networks: [[{ name: 'net0', description: 'public' }], [{ name: 'net0' }], [{ name: 'a', description: 'b',
    c: 1 }], [null], ['net0'], [[]], [], 'net0', {}, 0, null],
  brand: ['lx', 'bhyve', 'kvm', '', 5, null, ['bhyve'], true],
  ssh_key: [true, false, 'true', 1, 0, null],
  min_ram: [512, 1024, 1.5, -5, '512', 0, null, [512]],
  max_ram: [256, 2048, 1.5, -10, '2048', 0, null],
  min_platform: [{ '7.0': '20130729T063445Z' }, { '7.0': '20110101T000000Z' }, { '7.0': 'abcd0101T000000Z' },
    { '7.0': '20131301T000000Z' }, { '7.0': '20130100T000000Z' }, { '7.0': '2013-01-01T00:00Z' },
    { '7.0': '20130101X000000Z' }, { '7.0': '20130101T240000Z' }, { '7.0': '20130101T006000Z' },
    { '7.0': '20130101T000060Z' }, { '7.0': '20130101T000000z' }, { '7.0': '2013-1-01T000000Z' },
    { '7.0': 5 }, { '7.0': null }, { '6.5': '20120614T001014Z', '7.0': 'x' }, {}, [], ['20130101T000000Z'],
    'x', 5, null, true],
  max_platform: [{ '7.0': '20200101T000000Z' }, { '7.0': '2020' }, {}, 'x', [5]],
  bootrom: ['bios', 'uefi', '/some/path', 5, '', null],
  foo: [1, 'x', null],
  bar: [true],
};
// JSON.parse makes "__proto__" an own key; imgmanifest's copy turns it into a prototype.
const REQUIREMENT_SHAPES: unknown[] = ['ab', '', 5, true, 0, [], ['x'], [{}], { brand: 'bhyve' },
  JSON.parse('{"__proto__": {"brand": 5, "foo": 1}, "bootrom": "bios"}'),
  JSON.parse('{"__proto__": {"brand": "bhyve"}, "bootrom": "uefi", "min_ram": 2}')];

function requirements(rng: Rng): unknown {
  if (rng() < 0.15) return pick(rng, REQUIREMENT_SHAPES);
  const reqs: Json = {};
  for (const [key, values] of Object.entries(REQUIREMENT_VALUES)) if (rng() < 0.3) reqs[key] = pick(rng, values);
  return reqs;
}

const BIG_TAGS = { big: 'x'.repeat(100 * 1024) };

/** Per-field values to try (a function when it should be built afresh). */
const POOLS: Record<string, unknown[] | ((rng: Rng) => unknown)> = {
  v: [2, '2', 1, 0, -1, 'abc', 'Infinity', '-0', ' 2 ', [2], [[2]], [true], [1, 2], { v: 2 }],
  uuid: UUIDS,
  owner: UUIDS,
  origin: UUIDS,
  urn: ['sdc:sdc:base:1.8.1', 5, null, [], true],
  name: NAMES(1024),
  version: [...NAMES(512), '1.2.3+master-gcafebab', 1e21],
  description: ['ok', 'x'.repeat(10240), 'x'.repeat(10241), EMOJI.repeat(5121), { length: 20000 },
    { length: '20000' }, null, 5, [], { a: 1 }],
  homepage: URLS,
  eula: URLS,
  disabled: BOOLEANISH,
  activated: BOOLEANISH,
  published_at: DATES,
  state: ['active', 'unactivated', 'disabled', 'creating', 'failed', 'installed', 5, null, ['active']],
  public: BOOLEANISH,
  type: WORDS(['zone-dataset', 'zvol', 'lx-dataset', 'lxd', 'docker', 'other']),
  os: WORDS(['smartos', 'linux', 'windows', 'bsd', 'illumos', 'other']),
  error: [{ message: 'x' }, null, [], 'x', 5, true],
  files: FILES,
  icon: BOOLEANISH,
  acl: [[], [OWNER], [OWNER, 'bad'], ['bad', 'worse'], [null], [[OWNER]], 'x', {}, null, [5, OWNER]],
  requirements,
  users: [[], [{ name: 'root' }], [{ name: 'a', x: 1 }], [{}], ['root'], [null], [[]], 'x', {}, null],
  billing_tags: [['xxl'], ['x'.repeat(128)], ['x'.repeat(129)], [EMOJI.repeat(65)], [5], [null], 'x', {},
    null, ['a', 5, 'b']],
  traits: [{ a: 'x', b: true, c: [] }, { a: 5 }, { a: null }, { a: {} }, [], ['x'], [5], 'x', null, 5],
  tags: [{}, { a: 1, 'docker:id': 'sha256:x' }, [], 'x', null, 5, { a: null }, BIG_TAGS],
  generate_passwords: BOOLEANISH,
  inherited_directories: [['/usr'], [5], [null], '/usr', null, [], {}],
  nic_driver: DRIVERS,
  disk_driver: DRIVERS,
  cpu_type: ['qemu64', ...DRIVERS],
  image_size: SIZES,
  channels: [['dev'], 'x', null, []],
};
export const MUTATED_FIELDS = Object.keys(POOLS);

const EXTRA_KEYS = ['foo', 'creator_uuid', 'restricted_to_uuid', 'objectclass', 'constructor', 'toString',
  'hasOwnProperty', '__proto__', '0', 'Name', 'activated_at'];

function poolValue(rng: Rng, field: string): unknown {
  const pool = POOLS[field]!;
  const value = typeof pool === 'function' ? pool(rng) : pick(rng, pool);
  return structuredClone(value);
}

type Mutation = (rng: Rng, m: Json) => string;
const MUTATIONS: Mutation[] = [
  (rng, m) => {
    const field = pick(rng, MUTATED_FIELDS);
    m[field] = poolValue(rng, field);
    return `${field}=${JSON.stringify(m[field])?.slice(0, 40)}`;
  },
  (rng, m) => {
    const field = pick(rng, [...Object.keys(m), ...MUTATED_FIELDS]);
    delete m[field];
    return `-${field}`;
  },
  (rng, m) => {
    const key = pick(rng, EXTRA_KEYS);
    // an own key whatever its name, as JSON.parse makes it
    Object.defineProperty(m, key, { value: pick(rng, ANY), enumerable: true, writable: true, configurable: true });
    return `+${key}`;
  },
  // zvol-only fields on another type, or a zvol losing them
  (rng, m) => {
    m.type = pick(rng, ['zvol', 'zone-dataset', 'lxd', 'docker']);
    for (const f of ['nic_driver', 'disk_driver', 'cpu_type', 'image_size']) {
      if (rng() < 0.5) m[f] = poolValue(rng, f);
    }
    return `type=${String(m.type)}+drivers`;
  },
  (rng, m) => {
    const field = pick(rng, MUTATED_FIELDS);
    m[field] = structuredClone(pick(rng, ANY));
    return `${field}~${JSON.stringify(m[field])}`;
  },
  // requirements has the most rules: give it a draw of its own
  (rng, m) => {
    m.requirements = structuredClone(requirements(rng));
    return `requirements=${JSON.stringify(m.requirements)}`;
  },
];

export function mutate(rng: Rng, base: Json): { manifest: Json; label: string } {
  const manifest = structuredClone(base);
  const r = rng();
  const steps = r < 0.5 ? 1 : r < 0.8 ? 2 : 3;
  const label = Array.from({ length: steps }, () => pick(rng, MUTATIONS)(rng, manifest)).join(' ');
  return { manifest, label };
}

/** Valid starting points of every type, as imgmanifest would expect them in an IMGAPI. */
export const HAND_MADE: Json[] = [
  { v: 2, uuid: UUID, owner: OWNER, name: 'base64', version: '18.1.0', type: 'zone-dataset', os: 'smartos',
    state: 'active', activated: true, disabled: false, public: true, published_at: '2018-01-01T00:00:00Z',
    files: [FILE], requirements: { min_platform: { '7.0': '20141030T081701Z' }, networks: [{ name: 'net0',
      description: 'public' }] }, users: [{ name: 'root' }], generate_passwords: true,
    inherited_directories: ['/opt'], tags: { role: 'os' }, billing_tags: ['small'], traits: { ssd: true } },
  { v: 2, uuid: UUID, owner: OWNER, name: 'ubuntu-16.04', version: '20170403', type: 'lx-dataset', os: 'linux',
    state: 'active', activated: true, disabled: false, public: true, published_at: '2017-04-03T15:58:27Z',
    files: [{ ...FILE, compression: 'xz' }], requirements: { brand: 'lx', min_platform: { '7.0':
      '20160201T000000Z' } }, tags: { kernel_version: '4.3.0' } },
  { v: 2, uuid: UUID, owner: OWNER, name: 'ubuntu-certified-18.04', version: '20180808', type: 'zvol',
    os: 'linux', state: 'active', activated: true, disabled: false, public: false,
    published_at: '2018-08-08T00:00:00.123Z', files: [FILE], nic_driver: 'virtio', disk_driver: 'virtio',
    cpu_type: 'host', image_size: 10240, requirements: { brand: 'bhyve', bootrom: 'uefi', ssh_key: true,
      min_ram: 1024, max_ram: 4096 } },
  { v: 2, uuid: UUID, owner: OWNER, name: 'docker-layer', version: '8ddc19f16526', type: 'docker', os: 'linux',
    state: 'unactivated', activated: false, disabled: false, public: true, origin: OWNER,
    tags: { 'docker:repo': 'mongo', 'docker:id': 'sha256:8ddc', 'docker:config': { Cmd: ['mongod'] } } },
  { v: 2, uuid: UUID, owner: OWNER, name: 'incremental', version: '1.0.1', type: 'zone-dataset', os: 'smartos',
    state: 'disabled', activated: true, disabled: true, public: true, published_at: '2019-01-01T00:00:00Z',
    origin: OWNER, files: [{ ...FILE, dataset_guid: '1234', stor: 'local' }], acl: [OWNER] },
  { v: 2, uuid: UUID, owner: OWNER, name: 'lxd', version: '1', type: 'lxd', os: 'linux', state: 'active',
    activated: true, disabled: false, public: true, published_at: '2020-01-01T00:00:00Z', files: [FILE, FILE] },
  { v: 2, uuid: UUID, owner: OWNER, name: 'placeholder', version: '1', type: 'null', os: 'null',
    state: 'creating', activated: false, disabled: false, public: false, error: { message: 'x' } },
];
