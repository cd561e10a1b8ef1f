/*
 * Reports of bad bytes between servers. A peer that downloaded a whole
 * file from a holder and found that it does not match the manifest writes
 * suspect/<uuid>/<holder>. The holder reads its own copy again and, when
 * it is corrupt, sets it aside (store/verify.ts): it stops serving it at
 * once, withdraws its holder key and pulls a good copy, instead of serving
 * the bad one until its scrub comes round. The holder removes the report
 * once it has looked. Reports are checked one at a time, so peers can
 * never make a server read more than one file at once for them.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import type { Logger } from '../log.js';
import type { ImageStore } from '../store/store.js';
import { quarantine, verifyImage } from '../store/verify.js';
import type { ImageWriter } from '../store/writer.js';
import type { Keys } from './etcd.js';
import type { Holder } from './index-view.js';

export interface SuspectsDeps {
  id: string;
  keys: Keys;
  client: Etcd3;
  store: ImageStore;
  writer: ImageWriter;
  log: Logger;
}

interface Report {
  by: string;
  problem: string;
}

export class Suspects {
  /** Reports waiting to be checked, by uuid; a later report of the same image replaces the earlier one. */
  private readonly waiting = new Map<string, Report>();
  private running = false;
  private stopped = false;
  private idle: Promise<void> = Promise.resolve();

  constructor(private readonly deps: SuspectsDeps) {}

  /** Tells `holder` that a whole file of `uuid` it sent does not match the manifest. */
  async report(uuid: string, holder: Holder, problem: string): Promise<void> {
    const { client, keys, id, log } = this.deps;
    try {
      await client.put(keys.suspect(uuid, holder.id)).value(JSON.stringify({ by: id, at: new Date().toISOString(), problem }));
      log.info({ uuid, peer: holder.id }, 'told the holder that its copy sent bytes that do not match');
    } catch (err) {
      log.warn({ uuid, peer: holder.id, err: (err as Error).message }, 'could not tell the holder about its bad bytes');
    }
  }

  /** A key put under the prefix: a report about a copy held here is checked. */
  heard(kv: IKeyValue): void {
    const key = this.deps.keys.parse(kv.key.toString());
    if (key?.kind !== 'suspect' || key.server !== this.deps.id || this.stopped) return;
    this.waiting.set(key.uuid, parseReport(kv.value.toString()));
    if (!this.running) this.idle = this.drain();
  }

  /** Stops taking reports; resolves once the check under way has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.waiting.clear();
    await this.idle;
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      for (let next = this.take(); next && !this.stopped; next = this.take()) await this.check(...next);
    } finally {
      this.running = false;
    }
  }

  private take(): [string, Report] | undefined {
    const first = this.waiting.entries().next();
    if (first.done) return undefined;
    this.waiting.delete(first.value[0]);
    return first.value;
  }

  private async check(uuid: string, report: Report): Promise<void> {
    const { store, writer, log, client, keys, id } = this.deps;
    const record = store.get(uuid);
    const fields = { uuid, reported_by: report.by, reported: report.problem };
    try {
      const problems = record ? await verifyImage(store, record) : [];
      if (!record) log.debug(fields, 'a peer reported bad bytes of an image no longer held here');
      else if (problems.length === 0) log.info(fields, 'a peer reported bad bytes from this server; its copy matches its manifest');
      else {
        const left = await quarantine(writer, problems, `cluster:${report.by}`);
        for (const p of problems) {
          if (left.some((l) => l.uuid === p.uuid)) log.error({ ...fields, problem: p.problem }, 'this copy is corrupt, and could not be set aside');
          else log.warn({ ...fields, problem: p.problem }, 'a peer found this copy corrupt: set aside; the cluster pulls a good one');
        }
      }
    } catch (err) {
      log.error({ ...fields, err }, 'could not check a copy a peer reported');
    }
    try {
      await client.delete().key(keys.suspect(uuid, id)).exec();
    } catch (err) {
      // Checked again after the next listing: a second look costs a read, nothing else.
      log.debug({ uuid, err: (err as Error).message }, 'could not remove a report about this server');
    }
  }
}

function parseReport(text: string): Report {
  try {
    const parsed = JSON.parse(text) as Partial<Report>;
    return { by: typeof parsed.by === 'string' ? parsed.by : 'unknown', problem: typeof parsed.problem === 'string' ? parsed.problem : '' };
  } catch {
    return { by: 'unknown', problem: '' };
  }
}
