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
      url: { type: 'string', pattern: '^https?://[^\\s]+$' },
      type: { enum: ['imgapi', 'dsapi'], default: 'imgapi' },
      name: stringOrList,
      os: stringOrList,
      image_type: stringOrList,
      interval_minutes: { type: 'number', exclusiveMinimum: 0, default: 60 },
      ca_file: { type: 'string', minLength: 1 },
    },
  },
} as const;

/** ca_file paths are relative to the configuration file's folder. */
export function resolveMirrorPaths(mirrors: MirrorConfig[], baseDir: string): void {
  for (const m of mirrors) if (m.ca_file) m.ca_file = path.resolve(baseDir, m.ca_file);
}
