/*
 * Manifest validation exactly as imgmanifest 3.2.1 does it (docs/protocol.md §4):
 * its validateMinimalManifest / validateDcManifest / validatePublicManifest /
 * validatePrivateManifest, with the same fields, codes, messages and order.
 * schema.ts decides which values pass; this file holds imgmanifest's
 * if / else-if chains: which check comes first, which other fields it looks
 * at and what it says.
 *
 * Order of the errors: the profile's required fields, then every other
 * known field that is present (in imgmanifest's field order), then each
 * unknown key.
 *
 * Where imgmanifest throws instead of answering (null `name`, a `disabled`
 * that is not a boolean, a null `files` entry, ...) the field is reported
 * Invalid, with the message imgmanifest has for that kind of problem.
 */
import { format } from 'node:util';
import type { FieldError } from '../errors.js';
import { COMPRESSIONS, isObject, type JsonObject } from './types.js';
import {
  BOOTROMS, MAX_DESCRIPTION_LENGTH, MAX_NAME_LENGTH, MAX_TAGS_LENGTH, MAX_URL_LENGTH, MAX_VERSION_LENGTH,
  OSES, REQUIREMENTS, TYPES, is, unknownKeys,
} from './schema.js';

export type ValidatorProfile = 'minimal' | 'dc' | 'public' | 'private';

/** A profile, and whether the IMGAPI is configured for channels (imgmanifest's channelFromName). */
interface Mode {
  profile: ValidatorProfile;
  channels: boolean;
}

type Code = 'MissingParameter' | 'Invalid';
/** Fixed, or made from the value (a field's or an entry's) and the entry's key. */
type Message = string | ((value: unknown, key: string) => string);
type Applies = (m: JsonObject, profile: Mode) => boolean;

/** One `if (bad) errs.push(...)` branch of an imgmanifest validator. */
interface Rule {
  code: Code;
  ok: (value: unknown, m: JsonObject) => boolean;
  message?: Message;
  /** The branch is only taken when this holds (imgmanifest's cross-field conditions). */
  applies?: Applies;
}

type Validator = (m: JsonObject, field: string, profile: Mode) => FieldError[];

const invalid = (ok: Rule['ok'], message?: Message, applies?: Applies): Rule =>
  ({ code: 'Invalid', ok, message, applies });
const missing = (applies?: Applies, message?: string): Rule =>
  ({ code: 'MissingParameter', ok: (value) => value !== undefined, message, applies });
/** A message quoting the value through util.format, as imgmanifest does. */
const quoting = (fmt: string): Message => (value) => format(fmt, value);

function firstError(rules: Rule[], field: string, value: unknown, key: string, m: JsonObject,
  profile: Mode): FieldError | undefined {
  // An absent value only ever meets imgmanifest's MissingParameter branch.
  const candidates = value === undefined ? rules.filter((r) => r.code === 'MissingParameter') : rules;
  const rule = candidates.find((r) => (!r.applies || r.applies(m, profile)) && !r.ok(value, m));
  if (!rule) return undefined;
  if (rule.message === undefined) return { field, code: rule.code };
  const message = typeof rule.message === 'string' ? rule.message : rule.message(value, key);
  return { field, code: rule.code, message };
}

/** A field checked by one chain: the first rule it breaks is its error. */
const chain = (...rules: Rule[]): Validator => (m, field, profile) => {
  const error = firstError(rules, field, m[field], field, m, profile);
  return error ? [error] : [];
};

/**
 * A list or map: once `rules` pass, every entry goes through each group
 * of rules (a group reports its first failure). `firstOnly` stops at the
 * first bad entry, as imgmanifest's acl loop does.
 */
function collection(rules: Rule[], groups: Rule[][], firstOnly = false): Validator {
  const head = chain(...rules);
  return (m, field, profile) => {
    const errors = head(m, field, profile);
    const value = m[field];
    if (errors.length > 0 || typeof value !== 'object' || value === null) return errors;
    for (const [key, entry] of Object.entries(value)) {
      for (const group of groups) {
        const error = firstError(group, field, entry, key, m, profile);
        if (error) errors.push(error);
      }
      if (firstOnly && errors.length > 0) break;
    }
    return errors;
  };
}

const isZvol = (m: JsonObject) => m.type === 'zvol';
const isActivated = (m: JsonObject) => is.trueLike(m.activated);
const uuidField = chain(missing(), invalid(is.uuid));
const notNull = (what: string) => invalid(is.notNull, `image ${what} must not be null`);
/** imgmanifest throws on a value boolFromString rejects; this is the message its dead branch has. */
const booleanField = (name: string) => chain(missing(),
  invalid(is.booleanLike, quoting(`invalid image "${name}" (not an accepted boolean value): %j`)));

const url = (what: string) => chain(
  missing(),
  // url.parse() throws on anything but a string: no protocol there either.
  invalid(is.httpUrl, `invalid image ${what} URL protocol`),
  invalid(is.urlLength, `image ${what} URL is too long (max ${MAX_URL_LENGTH} characters)`),
);

/** `type` and `os`: "null" is allowed while the image is being created. */
const wordField = (what: 'type' | 'os', words: string[]) => chain(
  missing(),
  invalid((_, m) => is.creatingOrFailed(m.state), `invalid image ${what}, "null"`, (m) => m[what] === 'null'),
  invalid(is[what], (value) => format(`invalid image ${what}, "%s", must be one of: %s`, value, words.join(', '))),
);

/** nic_driver, disk_driver, cpu_type, image_size: required for a zvol, empty for the rest. */
const zvolOnly = (cannotHave: string, last: Rule) =>
  chain(missing(isZvol), invalid(is.falsy, quoting(cannotHave), (m) => !isZvol(m)), last);
const driver = (name: string, gap = ' ') => zvolOnly(
  `invalid image ${name}: "%s" (cannot have a value${gap}when image type is zvol)`,
  invalid(is.string, quoting(`invalid image ${name}: "%s" (must be a string)`)),
);

// ---- requirements

type RequirementCheck = (reqs: JsonObject, requirements: unknown, profile: Mode) => FieldError[];

/** A check of reqs[key], reported as "requirements.<key>". */
const requirement = (key: string, validate: Validator): RequirementCheck => (reqs, _, profile) =>
  validate(reqs, key, profile).map((e) => ({ ...e, field: `requirements.${e.field}` }));

const platforms = (key: string) => collection(
  [invalid(is.platforms, quoting(`invalid image "requirements.${key}" (not an object): %j`))],
  [[invalid(is.platformVersion, (value, version) => format(
    `invalid image "requirements.${key}" entry: "%s: %s" not a valid platform version`, version, value))]],
);

/** Only sizes that passed their own checks are compared. */
const ramRange: RequirementCheck = ({ min_ram: min, max_ram: max }) => {
  if (!min || !max || !is.ram(min) || !is.ram(max) || (max as number) >= (min as number)) return [];
  return [{ field: 'requirements.max_ram', code: 'Invalid',
    message: format('min_ram must be <= max_ram, but:min_ram=%s, max_ram=%s', min, max) }];
};

/** bootrom needs brand "bhyve"; imgmanifest reads that brand from the manifest, not its copy. */
const bootrom: RequirementCheck = (reqs, requirements) => {
  const brand = (requirements as { brand?: unknown }).brand;
  const error = (code: Code, message: string) => [{ field: 'requirements.bootrom', code, message }];
  if (!reqs.bootrom || (brand === 'bhyve' && is.bootrom(reqs.bootrom))) return [];
  if (!brand) {
    return error('MissingParameter', '"requirements.brand" not specified. "requirements.bootrom" '
      + 'requires "requirements.brand" to be set to "bhyve"');
  }
  if (brand !== 'bhyve') {
    return error('Invalid', format('invalid bootrom "requirements.bootrom" not supported with "%s" '
      + 'brand; "requirements.brand" must be "bhyve"', brand));
  }
  return error('Invalid', format('invalid bootrom "requirements.bootrom" invalid entry "%s"; '
    + 'must be one of: %s', reqs.bootrom, BOOTROMS.join(', ')));
};

const unknownRequirements = unknownKeys(REQUIREMENTS);

const REQUIREMENT_CHECKS: RequirementCheck[] = [
  requirement('networks', collection(
    [invalid(is.networks, quoting('invalid image "requirements.networks" (not an array): %j'))],
    [[invalid(is.network, quoting('invalid image "requirements.networks" entry: %j'))]],
  )),
  requirement('brand', chain(invalid(is.brand, quoting('invalid image "requirements.brand" (not a string): %j')))),
  requirement('ssh_key', chain(invalid(is.sshKey,
    quoting('invalid image "requirements.ssh_key" (not a boolean): %j')))),
  requirement('min_ram', chain(invalid(is.ram,
    quoting('invalid image "requirements.min_ram" (not a positive integer): %j')))),
  requirement('max_ram', chain(invalid(is.ram,
    quoting('invalid image "requirements.max_ram" (not a positive integer): %j')))),
  ramRange,
  requirement('min_platform', platforms('min_platform')),
  requirement('max_platform', platforms('max_platform')),
  bootrom,
  (reqs) => unknownRequirements(reqs).map((key) =>
    ({ field: key, code: 'Invalid', message: format('unsupported requirement "%s"', key) })),
];

const requirements: Validator = (m, field, profile) => {
  const value = m[field];
  if (value === undefined) return [{ field, code: 'MissingParameter' }];
  if (value === null) {
    return [{ field, code: 'Invalid', message: format('invalid image "requirements" (not an object): %j', value) }];
  }
  // imgmanifest's objCopy: own keys assigned one by one, so a string gives
  // its characters (each an unsupported requirement) and a number nothing.
  const reqs: JsonObject = {};
  for (const key of Object.keys(value)) reqs[key] = (value as JsonObject)[key];
  return REQUIREMENT_CHECKS.flatMap((check) => check(reqs, value, profile));
};

// ---- all fields, in imgmanifest's order

const FIELDS: Record<string, Validator> = {
  v: chain(missing(), invalid(is.nonNegativeNumber, '"v" must be a positive integer')),
  uuid: uuidField,
  urn: chain(missing(), invalid(is.string)),
  owner: uuidField,
  name: chain(missing(), notNull('name'),
    invalid(is.nameLength, `image name is too long, max ${MAX_NAME_LENGTH} characters`),
    invalid(is.nameChars, 'image name has invalid characters (only alpha-numeric characters and '
      + '" ", ".", "-", "_" and "/" are allowed)')),
  version: chain(missing(), notNull('version'),
    invalid(is.versionLength, `image version is too long, max ${MAX_VERSION_LENGTH} characters`),
    invalid(is.versionChars, 'image version has invalid characters (only alpha-numeric characters and '
      + '".", "-", "_" and "/" are allowed)')),
  description: chain(missing(), notNull('description'),
    invalid(is.descriptionLength, `image description is too long, max ${MAX_DESCRIPTION_LENGTH} characters`)),
  homepage: url('homepage'),
  eula: url('EULA'),
  disabled: chain(missing(), invalid(is.booleanLike)),
  activated: chain(missing(), invalid(is.booleanLike)),
  published_at: chain(
    missing(isActivated, 'if activated is "true" published_at must be present'),
    invalid(is.publishedAt, 'published_at date not in "YYYY-MM-DDTHH:MM:SS(.SSS)Z" format'),
  ),
  state: chain(missing(), invalid(is.state)),
  public: chain(
    missing(),
    // boolFromString's TypeError, caught and quoted (it names no field).
    invalid(is.booleanLike, quoting('TypeError: invalid value for "undefined": %j')),
    invalid(is.trueLike, 'private images are not allowed on a public Images API', (_, p) => p.profile === 'public'),
    invalid(is.falseLike, 'public images are not allowed on a private Images API', (_, p) => p.profile === 'private'),
  ),
  type: wordField('type', TYPES),
  os: wordField('os', OSES),
  origin: uuidField,
  error: chain(missing(), invalid(is.typeofObject, quoting('invalid image "error" (not an object): %j'))),
  files: collection([
    missing(isActivated, 'if activated is "true" files must be present'),
    invalid(is.array, quoting('invalid image "files" (not an array): %s')),
    invalid((files, m) => (m.type === 'lxd' ? is.atMostTwoFiles(files) : is.atMostOneFile(files)),
      'invalid image "files": too many files'),
  ], [
    [invalid(is.fileSha1, 'invalid image "files": file missing "sha1" field')],
    [invalid(is.fileSize, 'invalid image "files": file missing "size" field')],
    [invalid(is.fileCompression, 'invalid image "files": file missing "compression" field'),
      invalid(is.knownCompression, (file) => format('invalid image "files": invalid compression "%s" '
        + '(must be one of %s)', (file as JsonObject).compression, COMPRESSIONS.join(', ')))],
  ]),
  icon: booleanField('icon'),
  acl: collection(
    [missing(), invalid(is.array, quoting('invalid image "acl" (not an array): %s'))],
    [[invalid(is.uuid, (value, i) => format('invalid image "acl" (item %d is not a UUID): %s', i, value))]],
    true,
  ),
  requirements,
  users: collection(
    [missing(), invalid(is.array, quoting('invalid image "users" (not an array): %j'))],
    [[invalid(is.user, quoting('invalid image "users" entry: %j'))]],
  ),
  billing_tags: collection(
    [missing(), invalid(is.array, quoting('invalid image "billing_tags" (not an array): %s'))],
    [[invalid(is.billingTag, quoting('invalid image "billing_tags" entry : %s'))]],
  ),
  traits: collection(
    [missing(), invalid(is.objectOrArray, quoting('invalid image "traits" (not an object): %j'))],
    [[invalid(is.trait, (value, key) => format('invalid image "traits" entry: (%s, %j)', key, value))]],
  ),
  tags: chain(
    missing(),
    invalid(is.plainObject, quoting('invalid image "tags" (not an object): %j')),
    invalid(is.tagsSize, (tags) => format('image "tags" object is too big: %d characters (max %d)',
      JSON.stringify(tags).length, MAX_TAGS_LENGTH)),
  ),
  generate_passwords: booleanField('generate_passwords'),
  inherited_directories: collection([
    missing(),
    invalid((_, m) => m.type === 'zone-dataset',
      quoting('invalid image "inherited_directories" (only valid for a type:zone-dataset image): %j')),
    invalid(is.array, quoting('invalid image "inherited_directories" (not an array): %j')),
  ], [[invalid(is.string, quoting('invalid image "inherited_directories" entry: %j'))]]),
  nic_driver: driver('nic_driver'),
  disk_driver: driver('disk_driver', '  '), // sic: two spaces in imgmanifest
  cpu_type: driver('cpu_type'),
  image_size: zvolOnly('invalid image image_size: "%s" (cannot have a value when image type is zvol)',
    invalid(is.wholeNumber, quoting('invalid image image_size: "%s" (must be a positive integer)'))),
  channels: collection([
    missing(),
    invalid(() => false, 'channels is invalid with an IMGAPI not configured for channels', (_, mode) => !mode.channels),
    invalid(is.array, quoting('invalid image "channels" (not an array): %j')),
  ], [[invalid(is.string, quoting('invalid image "channels" entry: %j'))]]),
};

const unknownFields = unknownKeys(Object.keys(FIELDS));

const MINIMAL_REQUIRED = ['v', 'uuid', 'name', 'version', 'type', 'os'];
const IMGAPI_REQUIRED = ['v', 'uuid', 'owner', 'name', 'version', 'disabled', 'activated', 'published_at',
  'public', 'state', 'type', 'os', 'files', 'nic_driver', 'disk_driver', 'cpu_type', 'image_size'];
const REQUIRED: Record<ValidatorProfile, string[]> = {
  minimal: MINIMAL_REQUIRED, dc: IMGAPI_REQUIRED, public: IMGAPI_REQUIRED, private: IMGAPI_REQUIRED,
};

function validateField(m: JsonObject, field: string, profile: Mode): FieldError[] {
  try {
    return FIELDS[field]!(m, field, profile);
  } catch {
    // JavaScript coercion itself fails (an object whose toString and
    // valueOf are not functions): imgmanifest throws too.
    return [{ field, code: 'Invalid' }];
  }
}

/**
 * [] when valid; else one FieldError per problem, in imgmanifest's order,
 * with its codes (MissingParameter | Invalid) and messages.
 */
export function validateManifest(manifest: unknown, profile: ValidatorProfile, opts: { channels?: boolean } = {}): FieldError[] {
  if (!isObject(manifest)) return [{ field: 'manifest', code: 'Invalid', message: 'manifest is not an object' }];
  const channels = opts.channels === true;
  const required = channels && profile !== 'minimal' ? [...REQUIRED[profile], 'channels'] : REQUIRED[profile];
  const mode: Mode = { profile, channels };
  const present = Object.keys(FIELDS).filter((f) => !required.includes(f) && Object.hasOwn(manifest, f));
  return [
    ...[...required, ...present].flatMap((field) => validateField(manifest, field, mode)),
    ...unknownFields(manifest).map((field) => ({ field, code: 'Invalid' })),
  ];
}
