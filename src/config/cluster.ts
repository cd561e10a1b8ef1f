/*
 * The `cluster` key of config.json. Absent, the server runs alone and none
 * of src/cluster is loaded.
 *
 *   "cluster": {
 *     "etcd": { "endpoints": ["http://10.0.0.1:2379"], "prefix": "/smartos-image-server/",
 *               "credentials": { "username": "imgsrv", "password": "…" }, "ca_file": "etcd-ca.pem" },
 *     "advertise_url": "http://10.0.0.5:8080"
 *   }
 */

export interface ClusterConfig {
  etcd: {
    /** etcd client URLs, http:// or https://. */
    endpoints: string[];
    /** Every key this cluster writes starts with this; ends in "/". */
    prefix: string;
    /** etcd's own users (`etcdctl user add`), when auth is enabled there. */
    credentials?: { username: string; password: string };
    /** PEM file of the CA that signed etcd's certificate (https endpoints); relative to the config file. */
    ca_file?: string;
  };
  /** Where the other servers reach this one to pull files (its own IMGAPI root). */
  advertise_url: string;
  /** This server's name in the index; the host[:port] of advertise_url unless set. */
  id?: string;
  /** Credentials this server sends when pulling from peers (needed for private images or read_auth). */
  peer_auth?: { username: string; password: string };
  /** How many large files are pulled at once. */
  concurrency: number;
  /** How many small files (up to 32 MiB) are pulled at once, beside the large ones. */
  small_concurrency: number;
  /** How often the full reconciliation runs even when nothing announced a change. */
  sync_interval_ms: number;
}

const credentials = {
  type: 'object',
  additionalProperties: false,
  required: ['username', 'password'],
  properties: {
    username: { description: 'User name.', type: 'string', minLength: 1 },
    password: { description: 'Password, in clear: keep config.json readable by the server only.', type: 'string' },
  },
} as const;

export const clusterSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['etcd', 'advertise_url'],
  properties: {
    etcd: {
      description: 'Where the cluster index lives.',
      type: 'object',
      additionalProperties: false,
      required: ['endpoints'],
      properties: {
        endpoints: {
          description: 'etcd client URLs, http:// or https://.',
          type: 'array',
          minItems: 1,
          items: { type: 'string', pattern: '^https?://[^/?#\\s]+/?$' },
        },
        prefix: { description: 'Every key this cluster writes starts with this; ends in "/".', type: 'string', pattern: '^/[^\\s]*$', default: '/smartos-image-server/' },
        credentials: { ...credentials, description: "etcd's own user (`etcdctl user add`), when auth is enabled there." },
        ca_file: { description: "PEM file of the CA that signed etcd's certificate (https endpoints); relative to the config file.", type: 'string', minLength: 1 },
      },
    },
    advertise_url: { description: 'Where the other servers reach this one to pull files (its own IMGAPI root).', type: 'string', pattern: '^https?://[^/?#\\s]+(/[^?#\\s]*)?$' },
    id: { description: "This server's name in the index; the host[:port] of advertise_url unless set.", type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
    peer_auth: { ...credentials, description: 'Credentials sent when pulling from peers (needed for private images or read_auth).' },
    concurrency: { description: 'How many large files (over 32 MiB) are pulled at once.', type: 'integer', minimum: 1, maximum: 16, default: 2 },
    small_concurrency: { description: 'How many small files (up to 32 MiB) are pulled at once, beside the large ones.', type: 'integer', minimum: 1, maximum: 64, default: 8 },
    sync_interval_ms: { description: 'How often a server level with the index compares every image even when nothing announced a change (a server still behind does so at least every 10 s). Each comparison costs time in proportion to the catalog.', type: 'integer', minimum: 100, default: 300_000 },
  },
} as const;

/** The id a server has in the index when the config names none: host[:port] of its advertise_url. */
export function defaultServerId(advertiseUrl: string): string {
  const url = new URL(advertiseUrl);
  const id = `${url.host}${url.pathname.replace(/\/+$/, '')}`.replace(/[^A-Za-z0-9._:-]+/g, '_');
  return id.slice(0, 128);
}
