/*
 * The only manifest types. `Manifest` is the canonical v2 form every image is
 * held in, whatever style its manifest.json was written in; the wire shapes
 * (IMGAPI v2, DSAPI v1) are built from it by views.ts.
 */

export const COMPRESSIONS = ['gzip', 'bzip2', 'xz', 'none'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export const STATES = ['active', 'unactivated', 'disabled', 'creating', 'failed'] as const;
export type ImageState = (typeof STATES)[number];

export const ZERO_UUID = '00000000-0000-0000-0000-000000000000';

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface ManifestFile {
  sha1: string;
  size: number;
  compression: Compression;
  dataset_guid?: string;
  digest?: string;
  uncompressedDigest?: string;
}

export interface Manifest {
  v: 2;
  uuid: string;
  owner: string;
  name: string;
  version: string;
  state: ImageState;
  disabled: boolean;
  public: boolean;
  published_at?: string;
  type: string;
  os: string;
  files: ManifestFile[];
  description?: string;
  homepage?: string;
  eula?: string;
  icon?: boolean;
  urn?: string;
  requirements?: Record<string, unknown>;
  users?: unknown[];
  generate_passwords?: boolean;
  inherited_directories?: string[];
  origin?: string;
  nic_driver?: string;
  disk_driver?: string;
  cpu_type?: string;
  image_size?: number;
  tags?: Record<string, unknown>;
  acl?: string[];
  billing_tags?: string[];
  traits?: Record<string, unknown>;
  error?: Record<string, unknown>;
  /** The release channels the image is in (channels.ts); only on a server with channels. */
  channels?: string[];
}

/**
 * v1-only facts kept from a legacy manifest so the DSAPI view can give them
 * back as they were written (creator, vendor, cloud, file names).
 */
export interface LegacyFields {
  creator_uuid?: string;
  creator_name?: string;
  vendor_uuid?: string;
  cloud_name?: string;
}

export type JsonObject = Record<string, unknown>;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
