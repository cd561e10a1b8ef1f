/*
 * Release channels (docs/protocol.md §3.7): a fixed list of named buckets
 * an image can be in, one of them perhaps the default. Membership is the
 * manifest's `channels` field, so it is written, replicated and mirrored
 * like any other manifest change. An image with no `channels` field (one
 * published before channels were configured, or copied in by hand) is in
 * the default channel. Pure: the HTTP layer and the CLI pick channels with
 * these rules, and the transitions here change membership through the
 * store's one write gate.
 */
import { errors } from '../errors.js';
import type { Transition } from './states.js';

export const CHANNEL_NAME_RE = /^[a-z][a-z0-9_-]*$/;

export interface Channel {
  name: string;
  description: string;
  default?: boolean;
}

/** What a `channel` parameter picked: one channel, or every one (`*`). */
export type ChannelPick = { name: string } | { all: true };

/** What channels read of an image: a manifest, or the facts a store keeps of one. */
export interface ChannelsField {
  channels?: string[] | undefined;
}

export class Channels {
  readonly list: readonly Channel[];
  /** The channel of a request that names none, if there is one. */
  readonly fallback: string | undefined;
  private readonly names: ReadonlySet<string>;

  /** The channels a server is configured with; undefined for one without (it ignores `channel` parameters). */
  static configured(list: readonly Channel[] | undefined): Channels | undefined {
    return list ? new Channels(list) : undefined;
  }

  constructor(list: readonly Channel[]) {
    this.list = list;
    this.names = new Set(list.map((c) => c.name));
    this.fallback = list.find((c) => c.default === true)?.name;
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  /**
   * The channel a request's `channel` parameter names: the default when
   * absent, every channel for `*` where `star` allows it. A name that is
   * not configured is a ValidationFailed, as in sdc-imgapi.
   */
  pick(value: unknown, star: boolean): ChannelPick {
    if (value === undefined || value === '') {
      if (this.fallback !== undefined) return { name: this.fallback };
      throw errors.ValidationFailed('channel not specified and no default channel',
        { errors: [{ field: 'channel', code: 'MissingParameter' }] });
    }
    if (value === '*') {
      if (star) return { all: true };
      throw errors.ValidationFailed('channel "*" means every channel: name the one channel to publish into',
        { errors: [{ field: 'channel', code: 'Invalid' }] });
    }
    if (typeof value !== 'string' || !this.names.has(value)) {
      const shown = typeof value === 'string' ? value : JSON.stringify(value);
      const known = [...this.names].join(', ');
      throw errors.ValidationFailed(`unknown channel: ${shown} (this server has ${known}${star ? ', or * for all' : ''})`,
        { errors: [{ field: 'channel', code: 'Invalid', message: `"${shown}" is not a channel of this server` }] });
    }
    return { name: value };
  }

  /** The channels an image is in; one without the field is in the default channel. */
  of(m: ChannelsField): string[] {
    if (m.channels !== undefined) return m.channels;
    return this.fallback === undefined ? [] : [this.fallback];
  }

  /** Whether an image is in what a request picked. */
  holds(pick: ChannelPick, m: ChannelsField): boolean {
    return 'all' in pick || this.of(m).includes(pick.name);
  }
}

/** ChannelAddImage: the image is also in `name` (nothing changes if it already is). */
export function channelAdding(channels: Channels, name: string): Transition {
  return {
    event: `added to channel ${name}`,
    apply(m) {
      const current = channels.of(m);
      return { ...m, channels: current.includes(name) ? current : [...current, name] };
    },
  };
}

/**
 * DeleteImage with a channel, for an image in others too: it leaves that
 * channel only. Refused when no channel would be left, so that a race with
 * another removal never leaves an image that no channel lists.
 */
export function channelRemoval(channels: Channels, name: string): Transition {
  return {
    event: `removed from channel ${name}`,
    apply(m) {
      const current = channels.of(m);
      if (!current.includes(name)) {
        throw errors.ValidationFailed(`image "${m.uuid}" is not in channel ${name}`, { errors: [{ field: 'channel', code: 'Invalid' }] });
      }
      const left = current.filter((c) => c !== name);
      if (left.length === 0) {
        throw errors.ValidationFailed(`image "${m.uuid}" is in no channel but ${name}: delete it instead`,
          { errors: [{ field: 'channel', code: 'Invalid' }] });
      }
      return { ...m, channels: left };
    },
  };
}
