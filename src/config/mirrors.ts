/*
 * The `mirrors` configuration key: upstreams the server copies images from
 * on an interval. Kept here so config.ts only plugs it in.
 *
 *   "mirrors": [
 *     {"url": "https://images.smartos.org", "type": "imgapi", "name": ["base-64-lts"], "interval_minutes": 360},
 *     {"url": "https://datasets.example.org/datasets", "type": "dsapi", "os": "smartos", "ca_file": "private-ca.pem"}
 *   ]
 */
import path from 'node:path';

export interface MirrorConfig {
  url: string;
  /** The upstream's protocol: IMGAPI (default) or the legacy DSAPI. */
  type: 'imgapi' | 'dsapi';
  /** Only images of these names ("~part": names containing part). */
  name?: string | string[];
  os?: string | string[];
  /** Only images of these types (zone-dataset, lx-dataset, zvol, …). */
  image_type?: string | string[];
  interval_minutes: number;
  /** PEM file of a private CA, trusted besides the system's (relative to the config file). */
  ca_file?: string;
  /** With channels configured: this server's channel the copies land in (filled in with the default). */
  channel?: string;
}

const stringOrList = {
  oneOf: [
    { type: 'string', minLength: 1 },
    { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
  ],
} as const;

export const mirrorsSchema = {
  type: 'array',
  default: [],
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['url'],
    properties: {
      url: { description: "The upstream's root: an IMGAPI server, or a DSAPI one ending in /datasets.", type: 'string', pattern: '^https?://[^\\s]+$' },
      type: { description: "The upstream's protocol: imgapi or dsapi.", enum: ['imgapi', 'dsapi'], default: 'imgapi' },
      name: { ...stringOrList, description: 'Only images of these names ("~part": names containing part).' },
      os: { ...stringOrList, description: 'Only images for these operating systems.' },
      image_type: { ...stringOrList, description: 'Only images of these types (zone-dataset, lx-dataset, zvol, …).' },
      interval_minutes: { description: 'How often the upstream is copied from.', type: 'number', exclusiveMinimum: 0, default: 60 },
      ca_file: { description: "PEM file of a private CA, trusted besides the system's (relative to the config file).", type: 'string', minLength: 1 },
      channel: { description: "With channels configured: this server's channel the copies land in (default: the default channel). One channel of the upstream is picked with ?channel= in url.", type: 'string', pattern: '^[a-z][a-z0-9_-]*$' },
    },
  },
} as const;

/** ca_file paths are relative to the configuration file's folder. */
export function resolveMirrorPaths(mirrors: MirrorConfig[], baseDir: string): void {
  for (const m of mirrors) if (m.ca_file) m.ca_file = path.resolve(baseDir, m.ca_file);
}
