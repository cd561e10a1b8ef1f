/*
 * The rules for manifests that arrive through the write API (protocol.md
 * §3.8–3.12): what AdminImportImage, CreateImage and UpdateImage accept, the
 * defaults this server applies, and the state machine of §4.3. Pure: the
 * HTTP layer supplies the bodies, the store applies the results.
 */
import { InvalidParameter, ValidationFailed, type FieldError } from '../errors.js';
import { normalizeManifest } from './normalize.js';
import { isObject, type JsonObject } from './types.js';
import { upgradeManifest } from './upgrade.js';
import { validateManifest } from './validate.js';

export interface PublishDefaults {
  owner: string;
  public: boolean;
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
 * imgmanifest's rules, then the stricter ones this server loads images by
 * (imgmanifest lets `name: 5` through, which imgadm would choke on later):
 * what is accepted here always serves.
 */
function failIfInvalid(manifest: JsonObject, activated: boolean): void {
  const errors = validateManifest({ ...manifest, activated }, 'dc');
  if (errors.length === 0) {
    const loaded = normalizeManifest(manifest, new Date().toISOString());
    if (!loaded.ok) errors.push(...loaded.problems.map((message) => ({ field: 'manifest', code: 'Invalid', message })));
  }
  if (errors.length > 0) {
    throw ValidationFailed(`invalid image data: ${[...new Set(errors.map((e) => e.field))].join(', ')}`, errors);
  }
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
  return out;
}

/**
 * AdminImportImage: the manifest of a new, unactivated image. A v1 body
 * (a .dsmanifest) is upgraded before the defaults apply, since the
 * upgrader refuses a body that already has an owner.
 */
export function importedManifest(body: unknown, pathUuid: string, defaults: PublishDefaults): JsonObject {
  if (!isObject(body)) throw InvalidParameter('the body must be a JSON manifest');
  if (body.uuid !== pathUuid) {
    throw InvalidParameter(`uuid in the body, ${JSON.stringify(body.uuid)}, does not match the URL's ${pathUuid}`,
      [{ field: 'uuid', code: 'Invalid' }]);
  }
  let m = body;
  if (m.v === undefined && m.creator_uuid) {
    try {
      m = upgradeManifest(m);
    } catch (err) {
      throw InvalidParameter(`cannot upgrade the v1 manifest: ${(err as Error).message}`);
    }
  }
  const extra = Object.keys(m).filter((k) => !MANIFEST_FIELDS.has(k));
  if (extra.length > 0) {
    throw InvalidParameter(`invalid extra parameters: ${extra.map((k) => JSON.stringify(k)).join(', ')}`,
      extra.map((field) => ({ field, code: 'Invalid' })));
  }
  const manifest = withDefaults(m, defaults);
  failIfInvalid(manifest, false);
  return manifest;
}

/** CreateImage: like an import, but the server picks the uuid and state is not the client's. */
export function createdManifest(body: unknown, uuid: string, defaults: PublishDefaults): JsonObject {
  if (!isObject(body)) throw InvalidParameter('the body must be a JSON manifest');
  const refused: FieldError[] = ['uuid', 'state', 'activated'].filter((f) => body[f] !== undefined)
    .map((field) => ({ field, code: 'NotAllowed', message: `"${field}" is set by the server` }));
  if (refused.length > 0) throw ValidationFailed(`invalid image data: ${refused.map((e) => e.field).join(', ')}`, refused);
  return importedManifest({ ...body, uuid }, uuid, defaults);
}

/** UpdateImage: the changed manifest; `null` removes a field. */
export function updatedManifest(current: JsonObject, body: unknown): JsonObject {
  if (!isObject(body) || Object.keys(body).length === 0) {
    throw ValidationFailed('invalid image data: no fields to update', [{ field: 'body', code: 'MissingParameter' }]);
  }
  const refused = Object.keys(body).filter((k) => !MUTABLE_FIELDS.has(k));
  if (refused.length > 0) {
    throw ValidationFailed(`invalid image data: ${refused.join(', ')}`,
      refused.map((field) => ({ field, code: 'NotAllowed', message: `"${field}" cannot be updated` })));
  }
  const next: JsonObject = { ...current };
  for (const [key, value] of Object.entries(body)) {
    if (value === null) delete next[key];
    else next[key] = value;
  }
  failIfInvalid(next, next.state !== 'unactivated');
  return next;
}

/** ActivateImage: published now, unless the publisher supplied a date. */
export function activatedManifest(current: JsonObject, now: Date): JsonObject {
  return {
    ...current,
    state: current.disabled === true ? 'disabled' : 'active',
    published_at: typeof current.published_at === 'string' ? current.published_at : now.toISOString(),
  };
}

/** DisableImage / EnableImage: the flag always; the state only once activated. */
export function withDisabled(current: JsonObject, disabled: boolean): JsonObject {
  const next: JsonObject = { ...current, disabled };
  if (current.state === 'active' || current.state === 'disabled') next.state = disabled ? 'disabled' : 'active';
  return next;
}
