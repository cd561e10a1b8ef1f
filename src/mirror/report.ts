/*
 * What a mirror run reports: the outcome of each image it picked, the
 * run as a whole, and the events a listener (the CLI's progress) hears as
 * it goes. Data only; the engine fills it in.
 */
import type { ListingProgress } from './catalog.js';
import type { PlanEntry, Role } from './planner.js';
import type { UpstreamType } from './upstream.js';

/** channel-added: here already, added to the run's channel; channel-planned: so in a dry run. */
export type Outcome = 'copied' | 'present' | 'deleted' | 'failed' | 'planned' | 'channel-added' | 'channel-planned';

export interface ItemResult {
  uuid: string;
  name?: string;
  version?: string;
  role?: Role;
  outcome: Outcome;
  error?: string;
  /** Bytes fetched over the network in this run. */
  bytes?: number;
  resumedFrom?: number;
  seconds?: number;
}

export interface MirrorReport {
  upstream: string;
  type: UpstreamType;
  dryRun: boolean;
  startedAt: string;
  seconds: number;
  /** Set when the run did not reach the upstream because its breaker is open. */
  pausedUntil?: string;
  /** Set when the listing itself failed. */
  error?: string;
  listed: number;
  /** Listed manifests that cannot be mirrored. */
  rejected: number;
  selected: number;
  /** Copies planned, origins first (all of them in a dry run, else what was tried). */
  plan: PlanEntry[];
  results: ItemResult[];
}

export interface MirrorListener {
  listing?(progress: ListingProgress): void;
  planned?(plan: readonly PlanEntry[]): void;
  started?(entry: PlanEntry): void;
  bytes?(entry: PlanEntry, n: number): void;
  retrying?(what: string, err: Error, delayMs: number): void;
  finished?(result: ItemResult, entry?: PlanEntry): void;
}

export const count = (report: MirrorReport, outcome: Outcome) => report.results.filter((r) => r.outcome === outcome).length;
export const failed = (report: MirrorReport) => report.error !== undefined || report.results.some((r) => r.outcome === 'failed');

export function itemResult(entry: PlanEntry, outcome: Outcome): ItemResult {
  return { uuid: entry.image.uuid, name: entry.image.name, version: entry.image.version, role: entry.role, outcome };
}
