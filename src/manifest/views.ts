/*
 * The two wire shapes of one image. IMGAPI clients get v2 with sdc-imgapi's
 * field order and allowlist (docs/protocol.md §3.5); DSAPI clients get v1 in the
 * form current imgadm can still import and fifo can render (§2.2–2.4).
 * Pure: the caller supplies the public base URL and the file names.
 */
import { ZERO_UUID, type LegacyFields, type Manifest } from './types.js';

const V2_ORDER = ['v', 'uuid', 'owner', 'name', 'version', 'state', 'disabled', 'public',
  'published_at', 'type', 'os', 'files', 'acl', 'description', 'homepage', 'eula', 'icon', 'urn',
  'requirements', 'users', 'generate_passwords', 'inherited_directories', 'origin', 'nic_driver',
  'disk_driver', 'cpu_type', 'image_size', 'tags', 'billing_tags', 'traits'] as const;

/** Optional fields sdc-imgapi leaves out when they are empty. */
const OMIT_WHEN_EMPTY = new Set(['acl', 'description', 'homepage', 'eula', 'urn', 'requirements',
  'users', 'inherited_directories', 'tags', 'billing_tags', 'traits']);

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === '') return true;
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === 'object' && Object.keys(value).length === 0;
}

/**
 * `channels`: the image's channels, shown (last, as sdc-imgapi adds them)
 * only on a server with channels to a client of API version 2.
 */
export function toImgapi(m: Manifest, channels?: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of V2_ORDER) {
    const value = m[key];
    if (value === undefined || value === null) continue;
    if (OMIT_WHEN_EMPTY.has(key) && isEmpty(value)) continue;
    out[key] = key === 'files' ? m.files.map((f) => ({ ...f })) : value;
  }
  if (m.state === 'failed' && m.error) out.error = m.error;
  if (channels) out.channels = [...channels];
  return out;
}

export interface DsapiContext {
  /** Absolute base such as "https://images.example.net" (no trailing slash). */
  baseUrl: string;
  /** File name of each entry of files[], as served under /datasets/:uuid/. */
  fileNames: string[];
  legacy: LegacyFields | null;
  creatorName?: string;
  creatorUuid?: string;
  vendorUuid?: string;
}

const V1_PASSTHROUGH = ['description', 'homepage', 'requirements', 'users', 'generate_passwords',
  'inherited_directories', 'nic_driver', 'disk_driver', 'cpu_type', 'image_size', 'tags'] as const;

export function toDsapi(m: Manifest, ctx: DsapiContext): Record<string, unknown> {
  const creatorUuid = ctx.legacy?.creator_uuid
    ?? (m.owner !== ZERO_UUID ? m.owner : ctx.creatorUuid ?? m.owner);
  const out: Record<string, unknown> = {
    uuid: m.uuid,
    name: m.name,
    version: m.version,
    os: m.os,
    type: m.type,
  };
  if (m.urn) out.urn = m.urn;
  out.creator_uuid = creatorUuid;
  const creatorName = ctx.legacy?.creator_name ?? ctx.creatorName;
  if (creatorName) out.creator_name = creatorName;
  const vendorUuid = ctx.legacy?.vendor_uuid ?? ctx.vendorUuid;
  if (vendorUuid) out.vendor_uuid = vendorUuid;
  if (ctx.legacy?.cloud_name) out.cloud_name = ctx.legacy.cloud_name;
  if (m.published_at) out.published_at = m.published_at;
  // The upgrader asserts restricted_to_uuid and public never appear together.
  if (!m.public) out.restricted_to_uuid = m.acl?.[0] ?? m.owner;
  if (m.disabled) out.disabled = true;
  for (const key of V1_PASSTHROUGH) {
    if (!isEmpty(m[key])) out[key] = m[key];
  }
  // imgmanifest's v1→v2 upgrade keeps it: without it imgadm imports an incremental image without its chain.
  if (m.origin) out.origin = m.origin;
  out.files = m.files.map((f, i) => {
    const name = ctx.fileNames[i] ?? '';
    return {
      path: name,
      sha1: f.sha1,
      size: f.size,
      compression: f.compression,
      url: `${ctx.baseUrl}/datasets/${m.uuid}/${encodeURIComponent(name)}`,
    };
  });
  return out;
}
