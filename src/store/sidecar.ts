/*
 * server.json: what this server knows about an image that is not part of
 * its manifest. Kept beside manifest.json so that manifest.json stays a
 * pure manifest any other tool can read.
 */
import fs from 'node:fs';
import { isObject, type LegacyFields } from '../manifest/types.js';

export interface SidecarFile {
  /** The file's name in the image folder. */
  name?: string;
  /** base64 MD5 of the file, for Content-MD5. */
  md5?: string;
}

export interface HistoryEntry {
  event: string;
  at: string;
  by?: string;
}

export interface Sidecar {
  files?: SidecarFile[];
  /** When the file arrived, ISO. */
  uploaded_at?: string;
  /** How the image got here: http, import-image, mirror URL, … */
  source?: Record<string, unknown>;
  /** State changes, oldest first. */
  history?: HistoryEntry[];
  /** v1-only facts of a legacy manifest rewritten as v2, for the DSAPI view. */
  legacy?: LegacyFields;
  [key: string]: unknown;
}

export function sidecarFromText(text: string): Sidecar {
  const value: unknown = JSON.parse(text);
  if (!isObject(value)) throw new Error('server.json is not a JSON object');
  return value as Sidecar;
}

/** The sidecar of a folder; {} when it has none. Throws if it exists but is no JSON object. */
export function readSidecarSync(path: string): Sidecar {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch {
    return {};
  }
  return sidecarFromText(text);
}

export function withHistory(sidecar: Sidecar, event: string, by?: string): Sidecar {
  const entry: HistoryEntry = { event, at: new Date().toISOString() };
  if (by) entry.by = by;
  return { ...sidecar, history: [...(sidecar.history ?? []), entry] };
}
