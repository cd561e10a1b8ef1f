/*
 * Resident memory of one process, read from /proc/<pid>/status every
 * intervalMs for as long as it runs. Each sample carries the phase label the
 * orchestrator set last, so later phases (uploads, imports) only need to call
 * phase('name') and read stats('name').
 */
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';

export function readRss(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

export class RssSampler {
  constructor(pid, intervalMs = 100) {
    this.pid = pid;
    this.samples = [];
    this.label = 'idle';
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.sample();
  }

  sample() {
    try {
      this.samples.push({ t: performance.now(), label: this.label, bytes: readRss(this.pid) });
    } catch {
      // The process is gone; stop() is on its way.
    }
  }

  /** Labels the samples from now on; the boundary gets a sample of its own. */
  phase(label) {
    this.sample();
    this.label = label;
    this.sample();
  }

  stop() {
    clearInterval(this.timer);
  }

  /** The samples { t, label, bytes } of a phase; "download-many" also covers "download-many:1", ":2", … */
  samplesOf(label) {
    return this.samples.filter((x) => x.label === label || x.label.startsWith(`${label}:`));
  }

  /** Max, first and last value of a phase and how many samples it has. */
  stats(label) {
    const s = this.samplesOf(label).map((x) => x.bytes);
    if (s.length === 0) return undefined;
    return {
      samples: s.length,
      max: Math.max(...s),
      first: s[0],
      last: s[s.length - 1],
    };
  }
}
