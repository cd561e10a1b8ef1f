/*
 * This server's copy of the etcd index: image entries, holders, tombstones
 * and live servers, as the last listing and the watch events since left
 * them. It knows nothing of the local store and writes nothing to etcd;
 * every change reports the uuid it names, so the loop reconciles only
 * what moved.
 */
import type { IKeyValue } from 'etcd3';
import { manifestHash } from '../manifest/hash.js';
import { normalizeManifest } from '../manifest/normalize.js';
import { isObject, type ImageState, type Manifest } from '../manifest/types.js';
import type { Keys } from './etcd.js';
import type { Tombstone as StoreTombstone } from '../store/store.js';

export interface IndexEntry {
  /** Built from manifestText on each use: a copy of its own for each caller. */
  readonly manifest: Manifest;
  readonly manifestText: string;
  readonly state: ImageState;
  legacy: Record<string, unknown> | null;
  /** Server id that wrote the entry last. */
  by: string;
  modRev: string;
  hash: string;
}

/** A tombstone as the index holds it: the store's, and which server wrote it. */
export interface Tombstone extends StoreTombstone {
  server?: string;
}

export interface HolderKey {
  url: string;
  /** mod_revision of the holder key: a holder that announces itself again is a new chance. */
  rev: string;
}

export interface Holder extends HolderKey {
  id: string;
  live: boolean;
}

export class IndexView {
  readonly entries = new Map<string, IndexEntry>();
  readonly holders = new Map<string, Map<string, HolderKey>>();
  readonly deleted = new Map<string, Tombstone>();
  readonly servers = new Map<string, string>();
  revision: string | null = null;

  constructor(
    private readonly keys: Keys,
    /** This server, which is never its own source. */
    private readonly self: { id: string; url: string },
    /** An entry in etcd that is not a manifest this server could serve. */
    private readonly onBadEntry: (uuid: string, modRev: string) => void,
    /** The manifest this server's own index holds for an image, as JSON, if any. */
    private readonly localText: (uuid: string) => string | undefined = () => undefined,
  ) {}

  /** Replaces everything with a full listing. */
  load(kvs: IKeyValue[], revision: string): void {
    this.entries.clear();
    this.holders.clear();
    this.deleted.clear();
    this.servers.clear();
    for (const kv of kvs) this.put(kv);
    this.revision = revision;
  }

  /** Applies a put; returns the uuid it names, if any. */
  put(kv: IKeyValue): string | undefined {
    const key = this.keys.parse(kv.key.toString());
    this.seen(kv.mod_revision);
    if (!key) return undefined;
    const text = kv.value.toString();
    switch (key.kind) {
      case 'image': {
        const entry = parseEntry(text, key.uuid, kv.mod_revision, this.localText(key.uuid));
        if (entry) this.entries.set(key.uuid, entry);
        else this.onBadEntry(key.uuid, kv.mod_revision);
        return key.uuid;
      }
      case 'holder':
        this.setHolder(key.uuid, key.server, { url: text.replace(/\/+$/, ''), rev: kv.mod_revision });
        return key.uuid;
      case 'deleted':
        this.deleted.set(key.uuid, parseTombstone(text, key.uuid));
        return key.uuid;
      case 'server':
        try {
          const parsed: unknown = JSON.parse(text);
          if (isObject(parsed) && typeof parsed.url === 'string') this.servers.set(key.server, parsed.url);
        } catch {
          // not a server's announcement
        }
        return undefined;
      case 'suspect':
        // Reports to a holder, not part of the index (cluster/suspects.ts).
        return undefined;
    }
  }

  /** Records an entry this server has just written to etcd. */
  wrote(manifest: Manifest, legacy: unknown, by: string, modRev: string, hash: string): void {
    const json = sharedText(manifest, this.localText(manifest.uuid));
    this.entries.set(manifest.uuid, entryOf(json, manifest.state, isObject(legacy) ? legacy : null, by, modRev, hash));
  }

  /** Drops the entry's own copy of the manifest once the store holds the same (a pull has just landed). */
  share(uuid: string): void {
    const entry = this.entries.get(uuid);
    const local = this.localText(uuid);
    if (!entry || local === undefined || local !== entry.manifestText) return;
    this.entries.set(uuid, entryOf(local, entry.state, entry.legacy, entry.by, entry.modRev, entry.hash));
  }

  /** Applies a delete; returns the uuid it names, if any. */
  delete(kv: IKeyValue): string | undefined {
    const key = this.keys.parse(kv.key.toString());
    this.seen(kv.mod_revision);
    if (!key) return undefined;
    switch (key.kind) {
      case 'image':
        this.entries.delete(key.uuid);
        return key.uuid;
      case 'holder':
        this.removeHolder(key.uuid, key.server);
        return key.uuid;
      case 'deleted':
        this.deleted.delete(key.uuid);
        return key.uuid;
      case 'server':
        this.servers.delete(key.server);
        return undefined;
      case 'suspect':
        return undefined;
    }
  }

  setHolder(uuid: string, server: string, holder: HolderKey): void {
    let m = this.holders.get(uuid);
    if (!m) this.holders.set(uuid, (m = new Map()));
    m.set(server, holder);
  }

  removeHolder(uuid: string, server: string): void {
    const m = this.holders.get(uuid);
    m?.delete(server);
    if (m?.size === 0) this.holders.delete(uuid);
  }

  holdsHere(uuid: string): boolean {
    return this.holders.get(uuid)?.has(this.self.id) ?? false;
  }

  /** The other servers that hold `uuid` and can be reached over HTTP. */
  holdersOf(uuid: string): Holder[] {
    const out: Holder[] = [];
    for (const [id, { url, rev }] of this.holders.get(uuid) ?? []) {
      if (id === this.self.id || url === this.self.url || !/^https?:\/\//.test(url)) continue;
      out.push({ id, url, rev, live: this.servers.has(id) });
    }
    return out;
  }

  private seen(revision: string): void {
    if (this.revision === null || BigInt(revision) > BigInt(this.revision)) this.revision = revision;
  }
}

export function entryValue(manifest: Manifest, legacy: unknown, by: string): string {
  return JSON.stringify({ manifest, legacy: legacy ?? null, by, at: new Date().toISOString() });
}

function parseEntry(text: string, uuid: string, modRev: string, localText: string | undefined): IndexEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(value) || !isObject(value.manifest)) return undefined;
  // Only what this server would load from its own serve_dir: a pulled copy must serve.
  const checked = normalizeManifest(value.manifest, new Date().toISOString());
  if (!checked.ok || checked.value.manifest.uuid !== uuid || checked.value.manifest.files.length !== 1) return undefined;
  const manifest = checked.value.manifest;
  if (manifest.state !== 'active' && manifest.state !== 'disabled') return undefined;
  const legacy = isObject(value.legacy) ? value.legacy : null;
  const by = typeof value.by === 'string' ? value.by : 'unknown';
  return entryOf(sharedText(manifest, localText), manifest.state, legacy, by, modRev, manifestHash(manifest));
}

/** The manifest's JSON: an image held here as the index has it keeps one copy in memory, the store's, not two. */
function sharedText(manifest: Manifest, localText: string | undefined): string {
  const own = JSON.stringify(manifest);
  return own === localText ? localText : own;
}

function entryOf(json: string, state: ImageState, legacy: Record<string, unknown> | null, by: string, modRev: string,
  hash: string): IndexEntry {
  return {
    get manifest() {
      return JSON.parse(json) as Manifest;
    },
    manifestText: json,
    state,
    legacy,
    by,
    modRev,
    hash,
  };
}

function parseTombstone(text: string, uuid: string): Tombstone {
  try {
    const parsed: unknown = JSON.parse(text);
    if (isObject(parsed)) return { ...(parsed as unknown as Tombstone), uuid };
  } catch {
    // a bare key is tombstone enough
  }
  return { uuid };
}
