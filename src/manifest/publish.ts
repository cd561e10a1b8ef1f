/*
 * The rules for manifests that enter or change (docs/protocol.md
 * §3.8–3.12): the one validation profile every way in is held to, what
 * AdminImportImage, CreateImage and UpdateImage accept, and the defaults
 * this server applies. Pure: callers parse their input with these; the
 * store's write gate applies publishable() once more to whatever it
 * writes.
 */
import { errors, type FieldError } from '../errors.js';
import { CHANNEL_NAME_RE } from './channels.js';
import { normalizeManifest } from './normalize.js';
import { isActivated } from './states.js';
import { isObject, type JsonObject, type Manifest } from './types.js';
import { upgradeManifest } from './upgrade.js';
import { validateManifest } from './validate.js';

export interface PublishDefaults {
  owner: string;
  public: boolean;
  /** The channel a new image lands in, on a server with channels. */
  channel?: string;
}

/** Every field a stored v2 manifest may carry. */
const MANIFEST_FIELDS = new Set(['v', 'uuid', 'owner', 'name', 'version', 'description', 'homepage',
  'eula', 'icon', 'state', 'error', 'disabled', 'activated', 'public', 'published_at', 'type', 'os',
  'origin', 'files', 'acl', 'requirements', 'users', 'billing_tags', 'traits', 'tags',
  'generate_passwords', 'inherited_directories', 'nic_driver', 'disk_driver', 'cpu_type',
  'image_size', 'channels', 'urn']);

/** What UpdateImage may change (sdc-imgapi's mutable list, less channels). */
const MUTABLE_FIELDS = new Set(['owner', 'name', 'version', 'description', 'homepage', 'eula',
  'public', 'os', 'acl', 'requirements', 'users', 'billing_tags', 'traits', 'tags',
  'generate_passwords', 'inherited_directories', 'nic_driver', 'disk_driver', 'cpu_type', 'image_size']);

/**
 * Everything wrong with a manifest that is to be stored: imgmanifest's
 * rules (the "dc" profile, `activated` read from the state), then the
 * stricter ones this server loads images by (imgmanifest lets `name: 5`
 * through, which imgadm would choke on later).
 */
export function publishProblems(m: JsonObject | Manifest): FieldError[] {
  // Whether channels are configured is the caller's business: a manifest that carries them is checked as on a server with channels.
  const channels = m.channels !== undefined;
  const errs = validateManifest({ ...m, activated: isActivated(m.state as Manifest['state']) }, 'dc', { channels });
  if (errs.length > 0) return errs;
  if (channels) {
    const names = m.channels as string[];
    const bad = names.filter((c) => !CHANNEL_NAME_RE.test(c));
    if (bad.length > 0 || names.length === 0) {
      return [{ field: 'channels', code: 'Invalid', message: bad.length > 0
        ? `invalid channel names: ${bad.map((c) => JSON.stringify(c)).join(', ')}`
        : 'an image with "channels" must be in at least one' }];
    }
  }
  const loaded = normalizeManifest(m, new Date().toISOString());
  return loaded.ok ? [] : loaded.problems.map((message) => ({ field: 'manifest', code: 'Invalid', message }));
}

/** The manifest as stored and served, or ValidationFailed naming every bad field. */
export function publishable(m: JsonObject | Manifest): Manifest {
  const problems = publishProblems(m);
  if (problems.length > 0) {
    throw errors.ValidationFailed(`invalid image data: ${[...new Set(problems.map((e) => e.field))].join(', ')}`,
      { errors: problems });
  }
  const loaded = normalizeManifest(m, new Date().toISOString());
  if (!loaded.ok) throw new Error('normalizeManifest disagrees with publishProblems');
  return loaded.value.manifest;
}

function withDefaults(m: JsonObject, defaults: PublishDefaults): JsonObject {
  const out: JsonObject = { ...m };
  delete out.files;
  delete out.state;
  delete out.channels;
  delete out.activated;
  out.v ??= 2;
  out.owner ??= defaults.owner;
  out.public ??= defaults.public;
  out.disabled ??= false;
  out.state = 'unactivated';
  out.files = [];
  if (defaults.channel !== undefined) out.channels = [defaults.channel];
  return out;
}

/**
 * AdminImportImage: the manifest of a new, unactivated image. A v1 body
 * (a .dsmanifest) is upgraded before the defaults apply, since the
 * upgrader refuses a body that already has an owner.
 */
export function importedManifest(body: unknown, pathUuid: string, defaults: PublishDefaults): Manifest {
  if (!isObject(body)) throw errors.InvalidParameter('the body must be a JSON manifest');
  if (body.uuid !== pathUuid) {
    throw errors.InvalidParameter(`uuid in the body, ${JSON.stringify(body.uuid)}, does not match the URL's ${pathUuid}`,
      { errors: [{ field: 'uuid', code: 'Invalid' }] });
  }
  let m = body;
  if (m.v === undefined && m.creator_uuid) {
    try {
      m = upgradeManifest(m);
    } catch (err) {
      throw errors.InvalidParameter(`cannot upgrade the v1 manifest: ${(err as Error).message}`);
    }
  }
  const extra = Object.keys(m).filter((k) => !MANIFEST_FIELDS.has(k));
  if (extra.length > 0) {
    throw errors.InvalidParameter(`invalid extra parameters: ${extra.map((k) => JSON.stringify(k)).join(', ')}`,
      { errors: extra.map((field) => ({ field, code: 'Invalid' })) });
  }
  return publishable(withDefaults(m, defaults));
}

/** CreateImage: like an import, but the server picks the uuid and state is not the client's. */
export function createdManifest(body: unknown, uuid: string, defaults: PublishDefaults): Manifest {
  if (!isObject(body)) throw errors.InvalidParameter('the body must be a JSON manifest');
  const refused: FieldError[] = ['uuid', 'state', 'activated'].filter((f) => body[f] !== undefined)
    .map((field) => ({ field, code: 'NotAllowed', message: `"${field}" is set by the server` }));
  if (refused.length > 0) {
    throw errors.ValidationFailed(`invalid image data: ${refused.map((e) => e.field).join(', ')}`, { errors: refused });
  }
  return importedManifest({ ...body, uuid }, uuid, defaults);
}

/** UpdateImage: the changed manifest; `null` removes a field. */
export function updatedManifest(current: Manifest, body: unknown): Manifest {
  if (!isObject(body) || Object.keys(body).length === 0) {
    throw errors.ValidationFailed('invalid image data: no fields to update',
      { errors: [{ field: 'body', code: 'MissingParameter' }] });
  }
  const refused = Object.keys(body).filter((k) => !MUTABLE_FIELDS.has(k));
  if (refused.length > 0) {
    throw errors.ValidationFailed(`invalid image data: ${refused.join(', ')}`,
      { errors: refused.map((field) => ({ field, code: 'NotAllowed', message: `"${field}" cannot be updated` })) });
  }
  const next: JsonObject = { ...current };
  for (const [key, value] of Object.entries(body)) {
    if (value === null) delete next[key];
    else next[key] = value;
  }
  return publishable(next);
}
