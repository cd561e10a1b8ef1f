/*
 * The `channels` configuration key: the release channels images are
 * published into and listed from, as sdc-imgapi's channels are
 * configured (docs/publishing.md#channels). Absent, the server has no
 * channels and ignores `channel` parameters.
 *
 *   "channels": [
 *     {"name": "release", "description": "tested images", "default": true},
 *     {"name": "dev", "description": "fresh builds"}
 *   ]
 */
import type { MirrorConfig } from './mirrors.js';

export interface ChannelConfig {
  name: string;
  description: string;
  /** The channel a request without `channel` means; at most one has it. */
  default?: boolean;
}

export const channelsSchema = {
  type: 'array',
  minItems: 1,
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'description'],
    properties: {
      name: { description: 'The name clients give as ?channel=NAME: a lowercase letter, then lowercase letters, digits, "_" or "-".', type: 'string', pattern: '^[a-z][a-z0-9_-]*$' },
      description: { description: 'What the channel holds, shown by GET /channels.', type: 'string' },
      default: { description: 'Whether this is the channel of requests that name none (at most one channel).', type: 'boolean' },
    },
  },
} as const;

/** What the schema cannot say: names are unique and at most one channel is the default. */
export function channelsProblem(channels: readonly ChannelConfig[] | undefined): string | undefined {
  if (!channels) return undefined;
  const names = channels.map((c) => c.name);
  const twin = names.find((n, i) => names.indexOf(n) !== i);
  if (twin !== undefined) return `"channels" names "${twin}" twice`;
  const defaults = channels.filter((c) => c.default === true).map((c) => c.name);
  if (defaults.length > 1) return `"channels" has more than one default: ${defaults.join(', ')}`;
  return undefined;
}

/**
 * The channel each mirror's copies land in: its own `channel`, which must
 * be configured, else the default channel. Returns why it cannot be, if so.
 */
export function landMirrors(mirrors: MirrorConfig[], channels: readonly ChannelConfig[] | undefined): string | undefined {
  for (const [i, m] of mirrors.entries()) {
    if (!channels) {
      if (m.channel !== undefined) return `"mirrors.${i}.channel" needs "channels" configured`;
      continue;
    }
    if (m.channel !== undefined && !channels.some((c) => c.name === m.channel)) {
      return `"mirrors.${i}.channel" names "${m.channel}", which is not in "channels"`;
    }
    const fallback = channels.find((c) => c.default === true)?.name;
    m.channel ??= fallback;
    if (m.channel === undefined) return `"mirrors.${i}.channel" is needed: no channel is the default`;
  }
  return undefined;
}
