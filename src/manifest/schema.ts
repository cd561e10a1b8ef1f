/*
 * Which values imgmanifest 3.2.1 accepts, as JSON Schemas, each compiled
 * once, on first use. validate.ts strings these checks together in imgmanifest's order,
 * with its codes and messages; this file only decides pass or fail.
 *
 * imgmanifest is plain JavaScript and leans on coercion: `RE.test(value)`
 * and `TABLE[value]` stringify the value, `Number(value)` parses it, and
 * `value.length` is whatever the value has. Standard keywords say what JSON
 * Schema can; four custom keywords and one format carry what it cannot, so
 * a check passes exactly when imgmanifest's does (the cross-check test in
 * test/manifest holds us to that).
 */
import { createRequire } from 'node:module';
import type { Ajv, SchemaObject, ValidateFunction } from 'ajv';
import { COMPRESSIONS, STATES } from './types.js';

export const MAX_NAME_LENGTH = 1024;
export const MAX_VERSION_LENGTH = 512;
export const MAX_DESCRIPTION_LENGTH = 10 * 1024;
export const MAX_URL_LENGTH = 1024;
const MAX_BILLING_TAG_LENGTH = 128;
export const MAX_TAGS_LENGTH = 100 * 1024;
/* In imgmanifest's order: its messages list them. */
export const TYPES = ['zone-dataset', 'zvol', 'lx-dataset', 'lxd', 'docker', 'other'];
export const OSES = ['smartos', 'linux', 'windows', 'bsd', 'illumos', 'other'];
export const BOOTROMS = ['bios', 'uefi'];
export const REQUIREMENTS = ['networks', 'brand', 'ssh_key', 'min_ram', 'max_ram', 'min_platform',
  'max_platform', 'bootrom'];

const UUID = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
const NAME = '^[A-Za-z0-9._/ -]+$';
const VERSION = '^[A-Za-z0-9._/+-]+$';
const PUBLISHED_AT = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{3})?Z$';
// What url.parse() reads as an http(s) protocol: it skips leading
// characters below "!", U+00A0 and U+FEFF, and ignores case.
const HTTP_URL = '^[\\u0000-\\u0020\\u00a0\\ufeff]*[Hh][Tt][Tt][Pp][Ss]?:';

const require = createRequire(import.meta.url);
/** ajv's constructor, loaded on first use (a static import would load it with this module). */
const loadAjv = () => (require('ajv') as { Ajv: typeof Ajv }).Ajv;
let checkerAjv: Ajv | undefined;

/**
 * imgmanifest's validPlatformVersion, "YYYYMMDDTHHMMSSZ" from 2012 on. It
 * compares Number() of each part, so a part that is not a number (NaN)
 * passes; a regular expression would be stricter than the original.
 */
function isPlatformVersion(s: string): boolean {
  const part = (from: number, length: number) => Number(s.slice(from, from + length));
  const month = part(4, 2);
  const day = part(6, 2);
  return s.length === 16 && !(part(0, 4) < 2012) && !(month > 12 || month === 0)
    && !(day > 31 || day === 0) && s[8] === 'T' && !(part(9, 2) > 23)
    && !(part(11, 2) > 59) && !(part(13, 2) > 59) && s[15] === 'Z';
}

/**
 * The checker's ajv, set up on the first check: loading and setting up ajv
 * takes some 60 ms, and a server starting from its index snapshot checks
 * no manifest before it serves.
 */
function checker(): Ajv {
  if (checkerAjv) return checkerAjv;
  const ajv = new (loadAjv())({ strict: true, strictRequired: false, allowUnionTypes: true });
  ajv.addKeyword({
    keyword: 'asString',
    schemaType: 'object',
    // The subschema applied to String(value), which is what RE.test(value)
    // and a lookup in an object literal see: 5 is "5", ["zvol"] is "zvol".
    compile: (schema: SchemaObject, _parent, it) => {
      const check = it.self.compile(schema);
      return (data: unknown) => check(String(data));
    },
  });

  ajv.addKeyword({
    keyword: 'numberValue',
    schemaType: 'string',
    metaSchema: { enum: ['nonNegative', 'integer'] },
    errors: false,
    // Number(value) as imgmanifest computes it for `v` (must not be NaN or
    // negative) and `image_size` (n % 1 === 0): "16384", " 7 ", "0x10", true,
    // null, [] and [5] are all numbers to it.
    validate: (kind: string, data: unknown) => {
      const n = Number(data);
      return kind === 'integer' ? n % 1 === 0 : n >= 0;
    },
  });

  ajv.addKeyword({
    keyword: 'maxJsLength',
    schemaType: 'number',
    errors: false,
    // `value.length > max` as imgmanifest writes it: UTF-16 units of a string
    // (ajv's maxLength counts code points), items of an array, an object's
    // own `length` member; numbers and booleans have no length. null has
    // none either: imgmanifest throws there, and validate.ts checks it first.
    validate: (max: number, data: unknown) =>
      data === null || !((data as { length: number }).length > max),
  });

  ajv.addKeyword({
    keyword: 'maxJsonLength',
    schemaType: 'number',
    errors: false,
    validate: (max: number, data: unknown) => JSON.stringify(data).length <= max,
  });

  ajv.addFormat('platform-version', { type: 'string', validate: isPlatformVersion });
  checkerAjv = ajv;
  return ajv;
}

const FALSY = { enum: [false, 0, '', null] };
const TRUTHY = { not: FALSY };
/** imgmanifest's `if (value && !ok(value))`: a falsy value is not checked. */
const ifTruthy = (schema: SchemaObject) => ({ anyOf: [FALSY, schema] });
const pattern = (re: string) => ({ asString: { type: 'string', pattern: re } });
const oneOfWords = (words: string[]) => ({ asString: { type: 'string', enum: words } });
/** imgmanifest's `if (!file.KEY)`: anything but an object lacks it. */
const truthyMember = (key: string) => ({ type: 'object', required: [key], properties: { [key]: TRUTHY } });

const SCHEMAS = {
  notNull: { not: { type: 'null' } },
  falsy: FALSY,
  string: { type: 'string' },
  array: { type: 'array' },
  // typeof value === 'object' (null included: imgmanifest lets it through)
  typeofObject: { type: ['object', 'array', 'null'] },
  // the same where imgmanifest then reads keys, and throws on null
  objectOrArray: { type: ['object', 'array'] },
  plainObject: { type: 'object' },
  // imgmanifest's boolFromString: anything else throws there
  booleanLike: { enum: [true, false, 'true', 'false'] },
  trueLike: { enum: [true, 'true'] },
  falseLike: { enum: [false, 'false'] },

  uuid: pattern(UUID),
  nonNegativeNumber: { numberValue: 'nonNegative' },
  wholeNumber: { numberValue: 'integer' },
  nameLength: { maxJsLength: MAX_NAME_LENGTH },
  nameChars: pattern(NAME),
  versionLength: { maxJsLength: MAX_VERSION_LENGTH },
  versionChars: pattern(VERSION),
  descriptionLength: { maxJsLength: MAX_DESCRIPTION_LENGTH },
  httpUrl: { type: 'string', pattern: HTTP_URL },
  urlLength: { maxJsLength: MAX_URL_LENGTH },
  publishedAt: ifTruthy(pattern(PUBLISHED_AT)),
  state: { enum: [...STATES] },
  creatingOrFailed: { enum: ['creating', 'failed'] },
  // "null" stands for "not known yet" (validate.ts checks the state)
  type: { anyOf: [{ const: 'null' }, oneOfWords(TYPES)] },
  os: { anyOf: [{ const: 'null' }, oneOfWords(OSES)] },

  atMostOneFile: { type: 'array', maxItems: 1 },
  atMostTwoFiles: { type: 'array', maxItems: 2 },
  fileSha1: truthyMember('sha1'),
  fileSize: truthyMember('size'),
  fileCompression: truthyMember('compression'),
  knownCompression: { type: 'object', properties: { compression: { enum: [...COMPRESSIONS] } } },

  user: { type: 'object', required: ['name'], maxProperties: 1 },
  billingTag: { type: 'string', maxJsLength: MAX_BILLING_TAG_LENGTH },
  trait: { type: ['string', 'boolean', 'array'] },
  tagsSize: { maxJsonLength: MAX_TAGS_LENGTH },

  networks: ifTruthy({ type: 'array' }),
  network: { type: 'object', required: ['name', 'description'], maxProperties: 2 },
  brand: ifTruthy({ type: 'string' }),
  sshKey: ifTruthy({ type: 'boolean' }),
  ram: ifTruthy({ type: 'integer' }),
  platforms: ifTruthy({ anyOf: [{ type: 'object', minProperties: 1 }, { type: 'array', minItems: 1 }] }),
  platformVersion: { type: 'string', format: 'platform-version' },
  bootrom: { enum: BOOTROMS },
};

export type Predicate = (value: unknown) => boolean;

/**
 * One predicate per schema above, each compiled on first use: a server that
 * only reads never pays for them at start-up.
 */
export const is = Object.fromEntries(Object.entries(SCHEMAS).map(([name, schema]) => {
  let check: ValidateFunction | undefined;
  const predicate: Predicate = (value) => (check ??= checker().compile(schema as SchemaObject))(value);
  return [name, predicate];
})) as Record<keyof typeof SCHEMAS, Predicate>;

// Unknown keys are the one place where one schema finds several problems.
// Own keys only, as imgmanifest's Object.keys() (a requirements copy can
// have a prototype: see validate.ts).
let collector: Ajv | undefined;

/** Own keys of an object not in `known`, in the object's key order. */
export function unknownKeys(known: string[]): (data: object) => string[] {
  let check: ValidateFunction | undefined;
  return (data) => {
    collector ??= new (loadAjv())({ strict: true, allErrors: true, ownProperties: true });
    check ??= collector.compile({
      type: 'object',
      properties: Object.fromEntries(known.map((key) => [key, true])),
      additionalProperties: false,
    });
    return check(data) ? [] : check.errors!.map((e) => String(e.params.additionalProperty));
  };
}
