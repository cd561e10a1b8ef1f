/*
 * A hash of a manifest that does not depend on the order of its keys: two
 * servers (or a server and its own disk) agree on a manifest exactly when
 * its hash is the same. Manifests are never changed in place (a change
 * makes a new object), so the hash is kept with its object.
 */
import { createHash } from 'node:crypto';

const hashes = new WeakMap<object, string>();

export function manifestHash(manifest: object): string {
  let hash = hashes.get(manifest);
  if (hash === undefined) {
    hash = createHash('sha1').update(stableJson(manifest)).digest('hex');
    hashes.set(manifest, hash);
  }
  return hash;
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
