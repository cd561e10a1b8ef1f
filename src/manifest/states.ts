/*
 * The image state machine (docs/protocol.md §4.3), in one place. An image
 * starts unactivated (or creating, for a server-side build), takes its
 * file, and is activated once; from then on it is active or disabled as
 * its `disabled` flag says, its file never changes, and deleting it
 * leaves a tombstone so that its uuid is never reused.
 */
import { errors } from '../errors.js';
import type { ImageState, Manifest } from './types.js';

/** Whether an image in this state has been activated (active or disabled). */
export function isActivated(state: ImageState): boolean {
  return state === 'active' || state === 'disabled';
}

/** Whether an image in this state still takes a file (AddImageFile). */
export function takesFiles(state: ImageState): boolean {
  return state === 'unactivated';
}

/** A change to one image's manifest, and the event its history records. */
export interface Transition {
  event: string;
  apply(current: Manifest): Manifest;
}

/** ActivateImage: published now, unless the publisher supplied a date. */
export function activation(now: Date): Transition {
  return {
    event: 'activated',
    apply(m) {
      if (m.state !== 'unactivated') throw errors.ImageAlreadyActivated(`image "${m.uuid}" is already activated`);
      if (m.files.length === 0) throw errors.NoActivationNoFile(`image "${m.uuid}" cannot be activated: it has no file`);
      return activated(m, now);
    },
  };
}

/** The activated form of a manifest: active (or disabled, if flagged) with a publication date. */
export function activated(m: Manifest, now: Date): Manifest {
  return { ...m, state: m.disabled ? 'disabled' : 'active', published_at: m.published_at ?? now.toISOString() };
}

/** DisableImage / EnableImage: the flag always; the state only once activated. */
export function disabling(disabled: boolean, event = disabled ? 'disabled' : 'enabled'): Transition {
  return {
    event,
    apply(m) {
      const next: Manifest = { ...m, disabled };
      if (isActivated(m.state)) next.state = disabled ? 'disabled' : 'active';
      return next;
    },
  };
}

/** Puts another manifest in place of the current one (a peer's version of it). */
export function replacement(manifest: Manifest, event: string): Transition {
  return { event, apply: () => structuredClone(manifest) };
}
