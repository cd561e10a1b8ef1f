/*
 * Turns measurements into rows with a target each, and writes them as
 * bench/RESULTS.md (overwritten every run) and to stdout. A row is plain
 * data, so a new benchmark only has to push more rows.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

export function machineInfo(nginxVersion) {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  return {
    cpu: model,
    nproc: os.availableParallelism(),
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    nginx: nginxVersion,
  };
}

/** The commit measured, and whether src/ had uncommitted changes (the build includes them). */
export function codeVersion(repoRoot) {
  try {
    const git = (...args) => execFileSync('git', ['-C', repoRoot, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = git('status', '--porcelain', '--', 'src') !== '';
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? ' + uncommitted changes in src/' : ''}`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

const fmt = (v, digits) => (v === undefined || v === null ? '—' : typeof v === 'number' ? v.toFixed(digits) : String(v));

/** ours vs nginx, met when ours/nginx >= minRatio. */
export function ratioRow(name, unit, ours, nginx, minRatio, digits = 0) {
  const ratio = ours / nginx;
  return {
    name: `${name} (${unit})`,
    ours: fmt(ours, digits),
    nginx: fmt(nginx, digits),
    ratio: `${ratio.toFixed(2)}×`,
    target: `≥ ${minRatio.toFixed(1)}× nginx`,
    met: ratio >= minRatio,
  };
}

/** ours alone, met when ours <= max. */
export function limitRow(name, unit, ours, max, digits = 0) {
  return { name: `${name} (${unit})`, ours: fmt(ours, digits), nginx: '—', ratio: '—', target: `≤ ${max} ${unit}`, met: ours <= max };
}

/** A yes/no fact with its evidence in the Ours column. */
export function checkRow(name, evidence, target, met) {
  return { name, ours: evidence, nginx: '—', ratio: '—', target, met };
}

export function table(rows) {
  const head = ['Measurement', 'Ours', 'nginx', 'Ours/nginx', 'Target', 'Met'];
  const lines = rows.map((r) => [r.name, r.ours, r.nginx, r.ratio, r.target, r.met ? 'met' : '**NOT MET**']);
  return [head, head.map(() => '---'), ...lines].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

export function writeResults(file, { date, machine, code, setup, rows, notes }) {
  const md = `# Benchmark results

Written by \`npm run bench\` (bench/run.js); overwritten on every run.

- Date: ${date}
- CPU: ${machine.cpu}; nproc ${machine.nproc}; memory ${machine.memory}
- Kernel: ${machine.kernel}
- Node: ${machine.node}; nginx: ${machine.nginx}
- Code: ${code}

## Results

${table(rows)}

MB = 10^6 bytes. Ratios above 1 mean our server did better.

## Set-up

${setup.map((s) => `- ${s}`).join('\n')}
${notes.length > 0 ? `\n## Notes\n\n${notes.map((n) => `- ${n}`).join('\n')}\n` : ''}`;
  fs.writeFileSync(file, md);
  return md;
}
