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
  /** How many files are pulled at once. */
  concurrency: number;
  /** How often the full reconciliation runs even when nothing announced a change. */
  sync_interval_ms: number;
}

const credentials = {
  type: 'object',
  additionalProperties: false,
  required: ['username', 'password'],
  properties: {
    username: { type: 'string', minLength: 1 },
    password: { type: 'string' },
  },
} as const;

export const clusterSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['etcd', 'advertise_url'],
  properties: {
    etcd: {
      type: 'object',
      additionalProperties: false,
      required: ['endpoints'],
      properties: {
        endpoints: {
          type: 'array',
          minItems: 1,
          items: { type: 'string', pattern: '^https?://[^/?#\\s]+/?$' },
        },
        prefix: { type: 'string', pattern: '^/[^\\s]*$', default: '/smartos-image-server/' },
        credentials,
        ca_file: { type: 'string', minLength: 1 },
      },
    },
    advertise_url: { type: 'string', pattern: '^https?://[^/?#\\s]+(/[^?#\\s]*)?$' },
    id: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
    peer_auth: credentials,
    concurrency: { type: 'integer', minimum: 1, maximum: 16, default: 2 },
    sync_interval_ms: { type: 'integer', minimum: 100, default: 10_000 },
  },
} as const;

/** The id a server has in the index when the config names none: host[:port] of its advertise_url. */
export function defaultServerId(advertiseUrl: string): string {
  const url = new URL(advertiseUrl);
  const id = `${url.host}${url.pathname.replace(/\/+$/, '')}`.replace(/[^A-Za-z0-9._:-]+/g, '_');
  return id.slice(0, 128);
}
