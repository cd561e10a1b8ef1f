/*
 * imgmanifest 3.2.1's upgradeManifest (docs/protocol.md §2.3): a v1 DSAPI
 * manifest (no `v`, a `creator_uuid`) becomes the v2 manifest imgadm would
 * store; a v2 one comes back unchanged. Pure: the argument is never
 * modified and the result is always a deep copy. Where imgmanifest cannot
 * upgrade, this throws an Error with imgmanifest's message.
 *
 * Unlike normalize.ts (the lenient loader for manifests already on disk),
 * this keeps imgmanifest's pitfalls on purpose, e.g. an ".xz" file without
 * `compression` becomes "none": callers want imgadm's view of a manifest.
 */
import path from 'node:path';
import { format } from 'node:util';
import { UUID_RE, type JsonObject } from './types.js';

const V = 2;
const DROPPED = ['creator_uuid', 'vendor_uuid', 'creator_name', 'cloud_name', 'creator_admin'];
const OBSOLETE = ['platform_type', 'created_at', 'updated_at', '_url'];
/* Deliberately not anchored, as in imgmanifest. */
const NO_SECONDS = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z/;
const COMPRESSION_BY_EXTENSION: Record<string, string> = { '.gz': 'gzip', '.bz2': 'bzip2' };

export function upgradeManifest(manifest: Record<string, unknown>): Record<string, unknown> {
  let v: number;
  if (!manifest.v && manifest.creator_uuid) v = 1; // creator_uuid only exists in v1
  else if (!manifest.v) throw new Error('manifest does not have a "v" field');
  else v = Number(manifest.v);
  if (v >= V) return structuredClone(manifest);
  // imgmanifest looks for an upgrader above `v` and asserts it found one,
  // which fails only for a `v` that is not a number.
  if (Number.isNaN(v)) {
    throw new Error('The expression evaluated to a falsy value:\n\n  assert.ok(idx !== undefined)\n');
  }
  return upgradeTo2(manifest);
}

function upgradeTo2(old: JsonObject): JsonObject {
  if (!UUID_RE.test(String(old.uuid))) {
    throw new Error(format('uuid (%s) is required: "%s"', 'oldManifest.uuid', old.uuid));
  }
  if (!old.creator_uuid) {
    throw new Error(format('old DSAPI manifest does not have a "creator_uuid": %s', old));
  }
  // A JSON round trip, as imgmanifest copies (undefined members vanish).
  const manifest = JSON.parse(JSON.stringify(old)) as JsonObject;

  if (manifest.owner !== undefined) throw new Error('manifest.owner && manifest.creator_uuid');
  manifest.owner = manifest.creator_uuid;
  for (const key of DROPPED) delete manifest[key];

  if (manifest.restricted_to_uuid) {
    if (manifest.public !== undefined) throw new Error('manifest.restricted_to_uuid && manifest.public');
    manifest.public = false;
    manifest.acl = [manifest.restricted_to_uuid];
  } else {
    manifest.public = true;
  }
  delete manifest.restricted_to_uuid;
  delete manifest.owner_uuid;

  manifest.disabled = manifest.disabled === undefined ? false : Boolean(manifest.disabled);
  manifest.state = manifest.disabled ? 'disabled' : 'active';

  if (!manifest.published_at && manifest.created_at) manifest.published_at = manifest.created_at;
  if (manifest.published_at && NO_SECONDS.test(String(manifest.published_at))) {
    manifest.published_at = `${(manifest.published_at as string).slice(0, -1)}:00Z`;
  }

  if (manifest.files) {
    // Written as imgmanifest writes it, so a `files` that is no array of
    // objects fails with the same TypeError.
    (manifest.files as JsonObject[]).forEach((file) => {
      if (!file.compression) {
        const name = (file.path || file.url) as string;
        file.compression = COMPRESSION_BY_EXTENSION[path.posix.extname(name)] ?? 'none';
      }
      delete file.path;
      delete file.url;
    });
  }

  if (manifest.image_size) manifest.image_size = Number(manifest.image_size);
  for (const key of OBSOLETE) delete manifest[key];
  manifest.v = V;
  return manifest;
}
